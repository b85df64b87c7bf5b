"""The login cache: fast repeat logins, but never across a revocation or past its TTL."""

from __future__ import annotations

from davsync.server.logincache import LoginCache, cache_key


def test_hit_within_ttl_and_generation() -> None:
    cache = LoginCache(ttl=60)
    key = cache_key("alice", "pw")
    cache.put(key, "dev1", generation=3, now=0.0)
    assert cache.get(key, generation=3, now=59.0) == "dev1"
    assert cache.get(key, generation=3, now=60.0) is None


def test_any_revocation_invalidates() -> None:
    cache = LoginCache(ttl=60)
    key = cache_key("alice", "pw")
    cache.put(key, "dev1", generation=3, now=0.0)
    assert cache.get(key, generation=4, now=1.0) is None
    assert cache.get(key, generation=3, now=1.0) is None  # entries of old generations are gone


def test_put_from_before_a_revocation_is_ignored() -> None:
    cache = LoginCache(ttl=60)
    cache.get(cache_key("x", "y"), generation=5, now=0.0)
    key = cache_key("alice", "pw")
    cache.put(key, "dev1", generation=4, now=0.0)  # read generation 4, then 5 happened
    assert cache.get(key, generation=5, now=0.0) is None


def test_key_depends_on_password_and_hides_it() -> None:
    assert cache_key("alice", "pw1") != cache_key("alice", "pw2")
    assert cache_key("a", "b\0c") != cache_key("a\0b", "c")
    assert b"pw1" not in cache_key("alice", "pw1")


def test_zero_ttl_disables() -> None:
    cache = LoginCache(ttl=0)
    key = cache_key("alice", "pw")
    cache.put(key, "dev1", generation=0, now=0.0)
    assert cache.get(key, generation=0, now=0.0) is None


def test_size_is_bounded() -> None:
    cache = LoginCache(ttl=60, max_entries=10)
    for i in range(25):
        cache.put(cache_key("u", str(i)), "d", generation=0, now=0.0)
    assert cache.get(cache_key("u", "24"), generation=0, now=0.0) == "d"
    assert len(cache._entries) <= 10
