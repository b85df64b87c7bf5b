"""Radicale auth plugin: a davsync username plus one of its active device passwords.

Use it from any Radicale config as `[auth] type = davsync.server.radicale_auth`; the
credential store is found next to `[storage] filesystem_folder` (`../credentials.sqlite3`).
Radicale's own `cache_logins` does not apply to plugin types (Radicale 3.x disables it for
them); our cache is checked against the store's revocation generation on every request, so a
revoked device is refused on its very next request, even from another process.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from radicale.auth import BaseAuth

from davsync.server.logincache import LoginCache, cache_key
from davsync.server.settings import credentials_db_for
from davsync.server.store import CredentialStore

log = logging.getLogger(__name__)

# `[auth] type` may be this module's path (a standalone Radicale) or a configured subclass;
# the embedded server hands in its own cache (which its per-account rate limit reads too).
DEFAULT_CACHE_SECONDS = 60.0


class Auth(BaseAuth):
    """Checks device and app passwords against the credential store, with a short success
    cache."""

    shared_cache: LoginCache | None = None

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        folder = Path(configuration.get("storage", "filesystem_folder"))
        self.store = CredentialStore(credentials_db_for(folder))
        self.cache = self.shared_cache or LoginCache(DEFAULT_CACHE_SECONDS)

    def _login(self, login: str, password: str) -> str:
        """The username if `password` is one of its active device passwords, else ""."""
        if not login or not password:
            return ""
        generation = self.store.generation()  # read BEFORE checking: see LoginCache.put
        key = cache_key(login, password)
        now = time.monotonic()
        if self.cache.get(key, generation, now) is not None:
            return login
        device_id = self.store.check_password(login, password)
        if device_id is None:
            return ""
        self.cache.put(key, device_id, generation, now)
        self.store.touch(login, device_id)
        log.debug("device %s of %s signed in", device_id, login)
        return login


def auth_class(cache: LoginCache) -> type[Auth]:
    """A subclass using `cache`, passed to Radicale as `[auth] type`."""
    return type("Auth", (Auth,), {"shared_cache": cache})
