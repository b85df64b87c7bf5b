"""When to retry a request and how long to wait: a pure policy, so it is tested without time.

429 and 503 are the server asking us to slow down: honour Retry-After (seconds or an HTTP date,
clamped to [1, 300] s). Other transient failures (423 Locked, 500, 502, 504, connection errors
and timeouts) back off exponentially with jitter so many clients do not retry in lockstep.

423 is transient because the lock it reports is the server's own, not one davsync took: Xandikos
commits every write to git under a repository lock and answers 423 (or 500) to the writes that
meet it. A write answered 423 or 5xx also tells the collection to write less at once
(`WRITE_CONTENTION_STATUSES`, used by `writegate.WriteGate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
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
    """Seconds to wait from a Retry-After header, clamped; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def backoff(attempt: int, jitter: float) -> float:
    """Exponential backoff for retry number `attempt` (0-based); `jitter` in [0, 1) spreads
    the delay over [half, full] of the exponential step."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)
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
    """Seconds to sleep before retry number `attempt`, or None to give up.

    `status` is None for a connection failure; `attempt` counts retries already made.
    """
    if not is_transient(status) or attempt >= max_retries:
        return None
    if status in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(headers.get("retry-after"), now)
        if asked is not None:
            return asked
    return backoff(attempt, jitter)
