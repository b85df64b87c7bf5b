"""The retry policy as a table: status, headers, attempt -> delay or give up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from davsync.backup.store import RetryingStore, StoreError
from davsync.core.retry import backoff, parse_retry_after, retry_after_delay, retry_delay

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def http_date(delta: float) -> str:
    return format_datetime(NOW + timedelta(seconds=delta), usegmt=True)


@pytest.mark.parametrize(
    ("status", "headers", "attempt", "expected"),
    [
        (503, {"retry-after": "7"}, 0, 7.0),
        (429, {"retry-after": "0"}, 0, 1.0),  # clamped up
        (429, {"retry-after": "100000"}, 0, 300.0),  # clamped down
        (503, {"retry-after": http_date(42)}, 1, 42.0),
        (503, {"retry-after": http_date(-60)}, 1, 1.0),  # a date in the past
        (503, {"retry-after": "soon"}, 2, 4.0),  # unreadable: backoff
        (429, {}, 0, 1.0),
        (423, {}, 1, 2.0),  # Locked: the server's own write lock (Xandikos), backed off
        (423, {"retry-after": "9"}, 0, 1.0),
        (500, {"retry-after": "9"}, 1, 2.0),  # only 429/503 honour Retry-After
        (502, {}, 3, 8.0),
        (None, {}, 2, 4.0),  # connection failure
        (504, {}, 4, None),  # attempts used up
        (503, {"retry-after": "5"}, 4, None),
        (404, {}, 0, None),
        (412, {}, 0, None),
        (501, {}, 0, None),
        (507, {}, 0, None),
    ],
)
def test_retry_delay_table(
    status: int | None, headers: dict[str, str], attempt: int, expected: float | None
) -> None:
    # jitter 1.0 (the upper end) makes the backoff exactly base * 2**attempt
    assert retry_delay(status, headers, attempt, 4, now=NOW, jitter=1.0) == expected


def test_jitter_spreads_backoff_over_half_to_full_step() -> None:
    assert backoff(3, 0.0) == 4.0 and backoff(3, 1.0) == 8.0
    assert backoff(20, 1.0) == 60.0  # capped


@pytest.mark.parametrize("value", [None, "", "Wed, 99 Foo 2026", "-5"])
def test_unreadable_retry_after(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize(
    ("value", "raw", "in_run"),
    [
        ("0", 0.0, 1.0),
        ("30", 30.0, 30.0),
        ("3600", 3600.0, 300.0),
        (http_date(-60), 0.0, 1.0),
        (http_date(42), 42.0, 42.0),
        ("Thu, 01 Jan 2026 12:00:10 -0000", 10.0, 10.0),  # no zone: HTTP dates are GMT
    ],
)
def test_one_retry_after_reading_clamped_only_for_waits_inside_a_run(
    value: str, raw: float, in_run: float
) -> None:
    """Provisioning reports and schedules what the server asked; a run's own waits are
    clamped to [1, 300] s. One parser serves both."""
    assert parse_retry_after(value, NOW) == raw
    assert retry_after_delay(value, NOW) == in_run


def test_backoff_is_shared_by_every_room_that_retries() -> None:
    """The backup store (base 0.5 s) and the provisioning status backoff (60 s .. 6 h, the
    full step) use the same formula as the DAV client."""
    assert backoff(0, 1.0, base=0.5) == 0.5 and backoff(2, 0.0, base=0.5) == 1.0
    assert backoff(0, 1.0, base=60, cap=6 * 3600) == 60.0
    assert backoff(30, 1.0, base=60, cap=6 * 3600) == 6 * 3600.0


def test_retrying_store_waits_by_the_shared_backoff() -> None:
    sleeps: list[float] = []

    class Flaky:
        where = "test"
        calls = 0

        def get(self, name: str) -> bytes:
            self.calls += 1
            if self.calls < 4:
                raise StoreError("busy", transient=True)
            return b"ok"

    store = RetryingStore(Flaky(), attempts=4, base_delay=0.5,  # type: ignore[arg-type]
                          sleep=sleeps.append)
    assert store.get("x") == b"ok"
    for attempt, slept in enumerate(sleeps):
        assert backoff(attempt, 0.0, base=0.5) <= slept <= backoff(attempt, 1.0, base=0.5)
