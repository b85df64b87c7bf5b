"""`davsync collections`: what the account has, kind by kind, read through discovery.

Wired here, as every command's adapters are: the DAV client from the config, the listing
from `dav.discovery.list_collections`, one PROPFIND per collection for its item count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, get_args
from urllib.parse import urljoin

from davsync.app.sync import dav_url, make_authenticator, make_client
from davsync.config import Config
from davsync.core.kinds import Kind
from davsync.dav.api import RequestCounter
from davsync.errors import ConfigError, ServerSettingError

if TYPE_CHECKING:
    from davsync.dav.client import DavClient


@dataclass(frozen=True)
class AccountCollection:
    """One row of `davsync collections` (`--json` prints these fields)."""

    kind: str
    name: str
    displayname: str | None
    color: str | None
    items: int

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def account_collections(config: Config) -> list[AccountCollection]:
    """Every addressbook and calendar of the account. Unreachable or refused: the error
    `sync` gives (exit 3); no such home: the config error naming `[server] url` (exit 2)."""
    auth = make_authenticator(config)
    try:
        with make_client(config, auth, dav_url(config, auth), RequestCounter()) as client:
            return [row for kind in get_args(Kind) for row in _of_kind(client, kind)]
    except ServerSettingError as exc:
        raise ConfigError(f"{config.path} {exc}") from None


def _of_kind(client: DavClient, kind: Kind) -> list[AccountCollection]:
    from davsync.dav.collection import Collection
    from davsync.dav.discovery import list_collections

    home, listed = list_collections(client, kind)
    return [
        AccountCollection(kind, c.name, c.displayname, c.color, len(
            Collection(client, urljoin(home, c.href), kind, exists=True).list_etags()))
        for c in listed
    ]
