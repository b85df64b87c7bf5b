"""The one retry policy: when to try again and how long to wait. Pure: the time (`now`) and
the jitter are passed in, so it is tested without waiting.

Every room that retries uses it: the DAV client (`dav/http.py`), the backup store wrapper
(`backup/store.py` `RetryingStore`) and the provisioning backoff (`credentials/authenticator.py`).

429 and 503 are the server asking us to slow down: honour Retry-After (seconds or an HTTP date).
`parse_retry_after` reads the header as the server meant it (past dates are 0, nothing is
clamped): that is what a user is told and what schedules the next provisioning attempt.
`retry_after_delay` is the wait *inside* a run, clamped to [MIN_RETRY_AFTER, MAX_RETRY_AFTER]
= [1, 300] s: never a busy loop, and a server asking for an hour does not hold a run for an
hour (after the retries the run stops and says the server is overloaded).

Other transient failures (423 Locked, 500, 502, 504, connection errors and timeouts) back off
exponentially with jitter so many clients do not retry in lockstep.

423 is transient because the lock it reports is the server's own, not one davsync took: Xandikos
commits every write to git under a repository lock and answers 423 (or 500) to the writes that
meet it. A write answered 423 or 5xx also tells the collection to write less at once
(`WRITE_CONTENTION_STATUSES`, used by `dav/writegate.WriteGate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
TRANSIENT_STATUSES: Final = frozenset({423, 429, 500, 502, 503, 504})
WRITE_CONTENTION_STATUSES: Final = frozenset({423, 500, 502, 503, 504})
MIN_RETRY_AFTER: Final = 1.0
MAX_RETRY_AFTER: Final = 300.0
BACKOFF_BASE: Final = 1.0
BACKOFF_CAP: Final = 60.0


def is_transient(status: int | None) -> bool:
    """None stands for a connection failure or timeout, which is always worth another try."""
    return status is None or status in TRANSIENT_STATUSES


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from `now` that a Retry-After header asks for (delta-seconds or an HTTP date,
    RFC 9110; a date without a zone is GMT, as HTTP dates are); 0 for a date in the past,
    None if absent or unreadable. Not clamped: see `retry_after_delay`."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_after_delay(value: str | None, now: datetime) -> float | None:
    """The wait inside a run that a Retry-After header asks for, clamped to [1, 300] s."""
    seconds = parse_retry_after(value, now)
    if seconds is None:
        return None
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def backoff(
    attempt: int, jitter: float, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Exponential backoff for retry number `attempt` (0-based): `base * 2**attempt`, at most
    `cap`; `jitter` in [0, 1] spreads the delay over [half, full] of that step (1.0: the full
    step, for a schedule that must be predictable)."""
    step = min(cap, base * 2.0**attempt)
    return step * (0.5 + jitter / 2)


def retry_delay(
    status: int | None,
    headers: Mapping[str, str],
    attempt: int,
    max_retries: int,
    *,
    now: datetime,
    jitter: float,
) -> float | None:
    """Seconds to sleep before retry number `attempt` of an HTTP request, or None to give up.

    `status` is None for a connection failure; `attempt` counts retries already made.
    """
    if not is_transient(status) or attempt >= max_retries:
        return None
    if status in RETRY_AFTER_STATUSES:
        asked = retry_after_delay(headers.get("retry-after"), now)
        if asked is not None:
            return asked
    return backoff(attempt, jitter)
