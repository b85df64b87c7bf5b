"""HTTP Basic credentials: the simplest Authenticator (built from `[server]` by
`app/credentials.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from davsync.secret import Secret


@dataclass(frozen=True)
class BasicAuthenticator:
    """A fixed username and password; a 401 cannot be cured, so `refresh()` says False."""

    username: str
    password: Secret

    def credentials(self) -> tuple[str, Secret]:
        return self.username, self.password

    def refresh(self) -> bool:
        return False
