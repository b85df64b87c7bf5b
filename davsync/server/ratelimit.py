"""Token buckets keyed by client address: the provisioning endpoint and failed DAV logins.

Pure: the caller passes `now` (monotonic seconds), so tests drive time without sleeping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`per_minute` events per key, in bursts of at most `burst` (default: `per_minute`).

    Thread-safe. Buckets that have refilled completely are dropped, so memory stays bounded by
    the number of recently active addresses.
    """

    def __init__(self, per_minute: float, burst: float | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1.0, burst if burst is not None else per_minute)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _refill(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        return bucket

    def allow(self, key: str, now: float) -> bool:
        """Take one token if there is one; False means: refuse this request (429)."""
        with self._lock:
            bucket = self._refill(key, now)
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            self._prune(now)
            return True

    def blocked(self, key: str, now: float) -> bool:
        """True while the key has no token left, without taking one (for counting failures)."""
        with self._lock:
            return self._refill(key, now).tokens < 1.0

    def record(self, key: str, now: float) -> None:
        """Take a token even if none is left: a failure that already happened still counts."""
        with self._lock:
            bucket = self._refill(key, now)
            bucket.tokens = max(bucket.tokens - 1.0, -self.burst)
            self._prune(now)

    def retry_after(self, key: str, now: float) -> int:
        """Whole seconds until the key has a token again (for the Retry-After header)."""
        with self._lock:
            missing = 1.0 - self._refill(key, now).tokens
        return max(1, int(missing / self.rate + 0.999))

    def _prune(self, now: float) -> None:
        if len(self._buckets) < 1024:
            return
        full = [
            k for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
