"""A short in-process cache of successful device-password checks, so DAV sync stays fast.

Checking a device password costs a slow salted hash (argon2) on purpose; a sync makes many
requests. Entries are keyed by sha256(username, password) (the password itself is never kept)
and are valid only while the store's revocation generation is unchanged, so a revoked device
is refused on the very next request. Pure: the caller passes `now` and the generation.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass


def cache_key(username: str, password: str) -> bytes:
    """Unambiguous: the username's length prefix stops ("a", "b:c") matching ("a:b", "c")."""
    return hashlib.sha256(f"{len(username)}:{username}:{password}".encode()).digest()


@dataclass(frozen=True)
class _Entry:
    device_id: str
    generation: int
    expires: float


class LoginCache:
    """device id per (username, password) digest, for `ttl` seconds within one generation."""

    def __init__(self, ttl: float = 60.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, _Entry] = {}
        self._generation = -1
        self._lock = threading.Lock()

    def get(self, key: bytes, generation: int, now: float) -> str | None:
        """The cached device id, or None if unknown, expired, or anything was revoked since."""
        with self._lock:
            self._sync_generation(generation)
            entry = self._entries.get(key)
            if entry is None or entry.generation != generation or entry.expires <= now:
                return None
            return entry.device_id

    def put(self, key: bytes, device_id: str, generation: int, now: float) -> None:
        """Remember a success; `generation` must be the one read BEFORE the password check."""
        if self.ttl <= 0:
            return
        with self._lock:
            if generation < self._generation:
                return  # something was revoked while this password was being checked
            self._sync_generation(generation)
            if len(self._entries) >= self.max_entries:
                self._entries = {k: e for k, e in self._entries.items() if e.expires > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = _Entry(device_id, generation, now + self.ttl)

    def _sync_generation(self, generation: int) -> None:
        if generation != self._generation:
            self._entries = {k: e for k, e in self._entries.items() if e.generation == generation}
            self._generation = generation
