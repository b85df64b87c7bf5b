"""The value types and errors of the DAV side, shared by the client and the sync.

The sync sees a collection through `davsync.sync.ports.DavCollection`; `davsync.dav.collection`
implements it over httpx. Every method raises `DavError` subclasses, never httpx exceptions.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from davsync.errors import AuthError, DavsyncError, UnreachableError
from davsync.secret import Secret

# The most one HTTP exchange may take, from sending to the answer's last byte: a server that
# trickles its answer must not hold a run forever (`[server] request_timeout`).
DEFAULT_REQUEST_TIMEOUT = 600.0


class DavError(DavsyncError):
    """A request failed in a way that concerns one item or one collection. `answer` is the
    server's answer alone ("HTTP 400: reason"), for messages that name the item another way
    than by the request."""

    def __init__(self, message: str, status: int | None = None,
                 answer: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


class PreconditionFailed(DavError):
    """412 on a conditional PUT/DELETE: someone else changed the item; never overwrite blindly."""


class InvalidSyncToken(DavError):
    """403/412 with DAV:valid-sync-token: do a full etag listing and start from a fresh token."""


class DavUnreachable(UnreachableError):
    """Connection refused, DNS failure, timeouts after all retries, or 5xx after all retries."""


class DavAuthError(AuthError):
    """401 even after the authenticator's one refresh."""


@dataclass(frozen=True)
class Probe:
    """The cheapest change marker a collection offers: its getlastmodified where the quirks
    table says that moves with every change of a member and a fresh one is stored
    (`modified`, Radicale: a stat per item instead of reading every item), else CalendarServer
    getctag when the server has it, else the sync-token. `settled`: `modified` is old
    enough, against the server's clock and this request's time, that any later change moves
    it (`dav.probe.settled`); only then is it kept as a mark (`dav.probe`)."""

    ctag: str | None
    sync_token: str | None
    modified: str | None = None
    settled: bool = False

    def shows_no_change(self, ctag: str | None, sync_token: str | None,
                        modified: str | None = None) -> bool:
        """True when this probe matches the marks stored after the last complete read
        (`modified`: the stored getlastmodified mark, None when there is none fresh)."""
        if self.modified is not None and modified is not None:
            return self.modified == modified
        if self.ctag is not None:
            return self.ctag == ctag
        if self.modified is not None:
            return False  # a getlastmodified with nothing to compare it with
        return self.sync_token is not None and self.sync_token == sync_token

    @property
    def mark(self) -> str | None:
        """The getlastmodified to store as the next run's mark (None: not settled)."""
        return self.modified if self.settled else None

    def wants_ctag_probe(self, ctag: str | None, sync_token: str | None,
                         modified: str | None = None) -> bool:
        """True when this probe shows a change made so lately that its getlastmodified
        cannot be the next run's mark, and nothing else here could be: a getctag probe is
        then read before the listing (`sync.gather`), so that the run after this one is a
        probe alone. Nothing may be listed before that probe (`app.sync`'s early
        sync-collection is not sent)."""
        return (self.ctag is None and self.modified is not None and self.mark is None
                and (ctag, sync_token) != (None, None)
                and not self.shows_no_change(ctag, sync_token, modified))


@dataclass(frozen=True)
class PairingStart:
    """What a first pairing's query for every item (`synccollection.sync_with_data`) is
    checked against, read before it: the sync-token, or, where getlastmodified is a change
    marker, a settled getlastmodified. With the latter the token is read after the query
    and kept only while getlastmodified is unchanged (nothing changed between the two
    reads): on Radicale that costs a stat per item before the query instead of reading
    every item (1.1-1.2 s at 10 000), and the token is read while the items are applied."""

    token: str | None = None
    modified: str | None = None


@dataclass(frozen=True)
class SyncDelta:
    """Result of RFC 6578 sync-collection, 507 continuations already followed to the end."""

    changed: Mapping[str, str | None]  # href -> etag (None if the server gave none)
    deleted: frozenset[str]  # hrefs answered with 404
    sync_token: str


@dataclass(frozen=True)
class Fetched:
    """One item from a multiget: `data` is None and `error` says why when it failed;
    `status` is the item's own status in the answer (404: deleted since it was listed)."""

    href: str
    etag: str | None
    data: bytes | None
    error: str | None = None
    status: int | None = None


@dataclass
class Created:
    """Where a bulk-created item landed."""

    href: str
    etag: str | None


@dataclass
class RequestCounter:
    """Counts every HTTP request a run made (the `http_requests` of `sync --json`)."""

    count: int = 0
    by_method: dict[str, int] = field(default_factory=dict)

    def add(self, method: str) -> None:
        self.count += 1
        self.by_method[method] = self.by_method.get(method, 0) + 1


class Authenticator(Protocol):
    """Supplies credentials; on a 401 the client calls `refresh()` once and retries.

    `refresh()` returns True when new credentials are available to retry with (the provisioning
    authenticator clears and re-provisions once per run); basic auth returns False.
    """

    def credentials(self) -> tuple[str, Secret]: ...

    def refresh(self) -> bool: ...


def basic_authorization(auth: Authenticator) -> str:
    """The `Authorization` header value for the authenticator's current credentials."""
    username, password = auth.credentials()
    pair = f"{username}:{password.reveal()}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")
