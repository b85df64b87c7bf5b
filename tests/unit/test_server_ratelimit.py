"""Token buckets per client address, driven by a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from davsync.server.ratelimit import RateLimiter


def test_burst_then_refused_then_refilled() -> None:
    limiter = RateLimiter(per_minute=6)
    assert all(limiter.allow("a", 0.0) for _ in range(6))
    assert not limiter.allow("a", 0.0)
    assert limiter.retry_after("a", 0.0) == 10
    assert limiter.allow("a", 10.0)  # one token every 10 s
    assert not limiter.allow("a", 10.0)


def test_addresses_are_independent() -> None:
    limiter = RateLimiter(per_minute=1)
    assert limiter.allow("a", 0.0)
    assert not limiter.allow("a", 0.0)
    assert limiter.allow("b", 0.0)


def test_recorded_failures_block_until_refilled() -> None:
    limiter = RateLimiter(per_minute=3)
    for _ in range(3):
        assert not limiter.blocked("a", 0.0)
        limiter.record("a", 0.0)
    assert limiter.blocked("a", 0.0)
    assert limiter.blocked("a", 19.0)
    assert not limiter.blocked("a", 20.0)


def test_failures_beyond_the_budget_lengthen_the_block_but_boundedly() -> None:
    limiter = RateLimiter(per_minute=2)
    for _ in range(100):
        limiter.record("a", 0.0)
    assert limiter.blocked("a", 59.0)
    assert not limiter.blocked("a", 91.0)  # debt is capped at one burst


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50))
def test_never_more_than_burst_plus_refill(times: list[float]) -> None:
    limiter = RateLimiter(per_minute=5)
    times.sort()
    allowed = sum(limiter.allow("a", t) for t in times)
    assert allowed <= 5 + (times[-1] - times[0]) * 5 / 60 + 1e-9
