"""An in-memory DAV collection with etags, ctag and RFC 6578 tokens, for engine unit tests.

It follows the `DavCollection` contract (davsync/sync/ports.py) closely enough to test the sync
algorithm fast and exhaustively; integration tests run the same engine against real Radicale.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from davsync.core.kinds import SUFFIX, Kind
from davsync.dav.api import (
    Created,
    DavError,
    Fetched,
    InvalidSyncToken,
    PreconditionFailed,
    Probe,
    SyncDelta,
)


class MemCollection:
    def __init__(self, kind: Kind = "contacts", url: str = "/u/c/", exists: bool = True) -> None:
        self.kind: Kind = kind
        self.url = url
        self.exists = exists
        self.items: dict[str, tuple[str, bytes]] = {}  # href -> (etag, data)
        self.log: list[str] = []  # hrefs changed, in order; a token is an index into it
        self._etags = itertools.count(1)
        self.requests = 0
        self.fail_next_write: Exception | None = None

    # server-side edits (as another client would make them)
    def put_raw(self, href: str, data: bytes) -> str:
        etag = f'"{next(self._etags)}"'
        self.items[href] = (etag, data)
        self.log.append(href)
        return etag

    def delete_raw(self, href: str) -> None:
        del self.items[href]
        self.log.append(href)

    # contract
    def ensure_exists(self, displayname: str | None = None) -> None:
        self.requests += 1
        self.exists = True

    def probe(self) -> Probe:
        self.requests += 1
        return Probe(ctag=f"c{len(self.log)}", sync_token=f"t{len(self.log)}")

    def supports_sync_collection(self) -> bool:
        return True

    def sync(self, token: str | None) -> SyncDelta:
        self.requests += 1
        if token is None:
            changed = {h: e for h, (e, _) in self.items.items()}
            return SyncDelta(changed, frozenset(), f"t{len(self.log)}")
        if not token.startswith("t") or int(token[1:]) > len(self.log):
            raise InvalidSyncToken("bad token", 403)
        touched = set(self.log[int(token[1:]):])
        changed = {h: self.items[h][0] for h in touched if h in self.items}
        deleted = frozenset(h for h in touched if h not in self.items)
        return SyncDelta(changed, deleted, f"t{len(self.log)}")

    def sync_with_data(self, token: str | None = None) -> None:
        return None  # the listing + multiget path, as on a server the quirks table does not know

    def list_etags(self) -> dict[str, str | None]:
        self.requests += 1
        return {h: e for h, (e, _) in self.items.items()}

    def multiget(self, hrefs: Sequence[str]) -> Iterator[Fetched]:
        self.requests += 1
        for href in hrefs:
            if href in self.items:
                etag, data = self.items[href]
                yield Fetched(href, etag, data)
            else:
                yield Fetched(href, None, None, "HTTP 404", 404)

    def href_for(self, uid: str) -> str:
        return f"{self.url}{uid}{SUFFIX[self.kind]}"

    def _maybe_fail(self) -> None:
        if self.fail_next_write is not None:
            exc, self.fail_next_write = self.fail_next_write, None
            raise exc

    def create(self, href: str, data: bytes) -> str | None:
        self.requests += 1
        self._maybe_fail()
        if href in self.items:
            raise PreconditionFailed(f"{href} exists", 412)
        return self.put_raw(href, data)

    def update(self, href: str, data: bytes, etag: str | None) -> str | None:
        self.requests += 1
        self._maybe_fail()
        if etag is not None and (href not in self.items or self.items[href][0] != etag):
            raise PreconditionFailed(f"{href} changed", 412)
        return self.put_raw(href, data)

    def delete(self, href: str, etag: str | None) -> None:
        self.requests += 1
        self._maybe_fail()
        if href not in self.items:
            return
        if etag is not None and self.items[href][0] != etag:
            raise PreconditionFailed(f"{href} changed", 412)
        self.delete_raw(href)

    def can_bulk_create(self) -> bool:
        return not self.exists

    def bulk_create(self, items: Sequence[tuple[str, bytes]]) -> dict[str, Created]:
        self.requests += 1
        if self.exists:
            raise DavError("collection exists", 409)
        self.exists = True
        out = {}
        for uid, data in items:
            href = self.href_for(uid)
            out[uid] = Created(href, self.put_raw(href, data))
        return out
