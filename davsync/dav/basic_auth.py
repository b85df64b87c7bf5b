"""HTTP Basic credentials from configuration: the simplest Authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from davsync.errors import AuthError
from davsync.secret import Secret

if TYPE_CHECKING:
    from davsync.config import Config


@dataclass(frozen=True)
class BasicAuthenticator:
    """A fixed username and password; a 401 cannot be cured, so `refresh()` says False."""

    username: str
    password: Secret

    def credentials(self) -> tuple[str, Secret]:
        return self.username, self.password

    def refresh(self) -> bool:
        return False


def basic_authenticator(config: Config) -> BasicAuthenticator:
    """`[server] username` with `password` or `password_command` (run now, once per run)."""
    username = config.server.username
    if username is None:  # config.py requires it with auth = "basic"
        raise AuthError(f'{config.path} [server] username: is required with auth = "basic"')
    return BasicAuthenticator(username, config.server.resolve_password())
