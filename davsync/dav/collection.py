"""One addressbook or calendar on the server: `Collection` implements the `DavCollection`
contract (`api.py`) over a `DavClient`.

It owns the collection's state (exists, probe, last sync-token, hrefs ignored), its probes and
listing, and the item writes; the bigger jobs live beside it, each a module given the client and
the collection: the RFC 6578 sync (`synccollection.py`), downloads (`multiget.py`) and creating
a new collection with all its items (`bulkcreate.py`). It only builds bodies (`xmlbodies`),
reads answers (`multistatus`) and decides; every request goes through `DavClient.request`.
Hrefs the server lists that are not items of this collection are never read, written or
deleted (`members`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urljoin

import httpx

from davsync.core.kinds import MEDIA_TYPE, Kind
from davsync.dav import bulkcreate, multiget, synccollection
from davsync.dav import xmlbodies as xb
from davsync.dav.api import (
    Created,
    DavError,
    Fetched,
    PairingStart,
    PreconditionFailed,
    Probe,
    SyncDelta,
)
from davsync.dav.bounds import LISTING, SMALL
from davsync.dav.hrefs import (
    href_for,
    is_member,
    normalize_href,
    suffix_for,
)
from davsync.dav.multistatus import (
    DavResponse,
    Multistatus,
    member_etags,
    parse_multistatus,
)
from davsync.dav.probe import probe_from, probe_props
from davsync.dav.quirks import identify, rating
from davsync.dav.syncstream import SyncStream
from davsync.dav.writegate import WriteGate

if TYPE_CHECKING:
    from davsync.dav.client import DavClient
    from davsync.dav.earlyprobe import EarlySync

log = logging.getLogger(__name__)

_XML: Final = xb.XML_CONTENT
_V = TypeVar("_V")


class Collection:
    """One addressbook or calendar; implements `davsync.sync.ports.DavCollection`."""

    def __init__(
        self,
        client: DavClient,
        url: str,
        kind: Kind,
        *,
        exists: bool,
        displayname: str | None = None,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.kind: Kind = kind
        self.exists = exists
        self.displayname = displayname
        self.path = normalize_href(self.url, self.url)
        self.last_sync_token: str | None = None
        self.loaded_probe: Probe | None = None
        self._client = client
        self._reports: frozenset[str] | None = None
        self._ignored: set[str] = set()  # hrefs off the collection, reported once
        self._ignored_lock = threading.Lock()
        self._writes = WriteGate(client.concurrency, self.url)
        self._early_sync: EarlySync | None = None
        self._early_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Collection({self.url!r}, {self.kind!r}, exists={self.exists})"

    # -- reading ---------------------------------------------------------------------------

    def _propfind(self, props: Sequence[str], depth: str) -> Multistatus:
        return self._timed_propfind(props, depth)[0]

    def _timed_propfind(self, props: Sequence[str], depth: str
                        ) -> tuple[Multistatus, str | None, float]:
        """The answer, its Date header and the seconds the request took (`dav.probe`)."""
        started = time.monotonic()
        response = self._client.request(
            "PROPFIND", self.url, headers={"Depth": depth, **_XML}, content=xb.propfind(props),
            limit=SMALL if depth == "0" else LISTING,
        )
        seconds = time.monotonic() - started
        if response.status_code == 404:  # gone (or never made): create it before writing
            self.exists = False
        if response.status_code != 207:
            raise self._client.failure("PROPFIND", self.url, response)
        return (parse_multistatus(response.content, self.url), response.headers.get("Date"),
                seconds)

    def _own(self, ms: Multistatus) -> DavResponse:
        """The collection's own response. Xandikos answers a PROPFIND of a missing collection
        with a 207 whose only response says 404: that is a 404 (DavError status 404)."""
        own = ms.own(self.path)
        if own is None:
            raise DavError(f"{self.url}: the answer does not describe the collection itself")
        if own.status == 404:
            raise DavError(f"{self.url}: not found on the server (HTTP 404)", 404)
        return own

    def _observe(self, own: DavResponse) -> None:
        if xb.SUPPORTED_REPORT_SET in own.props:
            self._reports = own.reports()
        self._client.learn(identify(sync_token=own.text(xb.SYNC_TOKEN)))

    def load(self) -> None:
        """Find out whether the collection exists and is of the right kind (one PROPFIND).

        It asks for the probe's properties too and keeps what it saw in `loaded_probe`, so a
        first run needs no second probe. Where a first pairing checks its query for every
        item against a mark read before it (`PairingStart`, Radicale) it leaves getctag out:
        that walks every item on Radicale (1.1-1.2 s at 10 000). The getlastmodified it
        asks where that is a change marker (a stat per item) is that pairing's mark when
        settled (`pairing_start`); the sync-token is read beside the query
        (`synccollection._read_and_mark`)."""
        pairing_by_query = rating(self._client.server, "query_all_data") == "supported"
        marker = (xb.SUPPORTED_REPORT_SET,) if pairing_by_query else xb.PROBE_PROPS
        if self.modified_marks():
            marker = (*marker, *xb.MODIFIED_PROBE_PROPS)
        try:
            answer, date, seconds = self._timed_propfind((xb.RESOURCETYPE, *marker), "0")
            own = self._own(answer)
        except DavError as exc:
            if exc.status != 404:
                raise
            self.exists = False
            return
        self._check_type(own)
        self.loaded_probe = self._probe_of(own, date, seconds)
        self.exists = True

    def _check_type(self, own: DavResponse) -> None:
        types = own.child_tags(xb.RESOURCETYPE)
        wanted, noun = (
            (xb.ADDRESSBOOK, "an addressbook") if self.kind == "contacts" else
            (xb.CALENDAR, "a calendar")
        )
        if wanted not in types:
            raise DavError(
                f"{self.url} exists but is not {noun}; choose another collection name"
            )

    def modified_marks(self) -> bool:
        """Whether getlastmodified is this collection's change marker (`dav.probe`)."""
        return rating(self._client.server, "modified_marks") == "supported"

    def probe(self, *, marked: bool = False) -> Probe:
        """The change probe (`dav.probe.probe_props`: `marked`, a fresh getlastmodified mark
        is stored); servers with no marker get a second PROPFIND for the sync-token. An
        early sync-collection sent before it is dropped: a listing must come after the
        probe whose marks are kept."""
        self._drop_early_sync()
        answer, date, seconds = self._timed_propfind(
            probe_props(self._client.server, marked=marked), "0")
        found = self._probe_of(self._own(answer), date, seconds)
        return found if found is not None else self._token_probe()

    def read_probe(self, status: int, content: bytes, *, date: str | None = None,
                   seconds: float = 0.0) -> Probe | None:
        """The probe from an answer to `probe_props` sent some other way (the early probe),
        with its Date header and round trip; None when it is not a usable 207 with a
        marker: then call `probe()`."""
        if status != 207:
            return None
        try:
            return self._probe_of(self._own(parse_multistatus(content, self.url)), date,
                                  seconds)
        except DavError as exc:
            log.debug("%s: early probe answer not used: %s", self.url, exc)
            return None

    def _probe_of(self, own: DavResponse, date: str | None, seconds: float) -> Probe | None:
        self._observe(own)
        return probe_from(own, date=date, seconds=seconds)

    def pairing_start(self) -> PairingStart | None:
        """The mark a first pairing's query is checked against, taken before this call
        returns (`PairingStart`): the settled getlastmodified `load` read, where that is a
        change marker; else the sync-token as of now (a PROPFIND Depth 0 for it alone).
        None when the server gives no token."""
        loaded = self.loaded_probe
        if loaded is not None and loaded.mark is not None and self.modified_marks():
            return PairingStart(modified=loaded.mark)
        token = self._token_probe().sync_token
        return PairingStart(token=token) if token is not None else None

    def marks_after(self, start: PairingStart) -> tuple[str | None, str | None]:
        """(getctag, sync-token) the items of a first pairing's query are at, read in one
        PROPFIND after the query. With a `start` by token: that token, and the getctag while
        the token still is it. With one by getlastmodified: the token while getlastmodified
        is unchanged, else (None, None): something changed since `start`, so no token read
        now is known to describe the items. No getctag then: on Radicale it is a second walk
        over every item (0.7 s at 10 000) that would outlast the applying, and the fresh
        getlastmodified mark makes the next runs' probes; when that mark is an hour old, one
        sync from the token records a getctag. getlastmodified is asked first: Radicale
        answers the properties in order, under one lock that no write to an item can take
        meanwhile, and the first sync-token it ever makes for a collection creates its cache
        folder inside the collection's, which moves getlastmodified without any item
        changing."""
        props = ((xb.GETLASTMODIFIED, xb.SYNC_TOKEN) if start.token is None
                 else (xb.GETCTAG, xb.SYNC_TOKEN))
        own = self._own(self._propfind(props, "0"))
        ctag, token = own.text(xb.GETCTAG), own.text(xb.SYNC_TOKEN)
        if start.token is not None:
            return (ctag if token == start.token else None), start.token
        if own.text(xb.GETLASTMODIFIED) != start.modified:
            return None, None
        return ctag, token

    def _token_probe(self) -> Probe:
        own = self._own(self._propfind((xb.SYNC_TOKEN,), "0"))
        self._observe(own)
        return Probe(None, own.text(xb.SYNC_TOKEN))

    def supports_sync_collection(self) -> bool:
        said = rating(self._client.server, "sync_collection")
        if said is not None:
            return said == "supported"
        if self._reports is None:
            self._observe(self._own(self._propfind((xb.SUPPORTED_REPORT_SET,), "0")))
        return xb.SYNC_COLLECTION in (self._reports or frozenset())

    def present_early_sync(self, early: EarlySync) -> None:
        """The sync-collection with data the composition root sent right after the early
        probe's answer (`dav.earlyprobe`): `sync_with_data` from its token reads its answer
        instead of asking again, unless a probe went out after it."""
        with self._early_lock:
            self._early_sync = early

    def take_early_sync(self, token: str | None) -> EarlySync | None:
        """The early sync-collection sent from `token`, once; None when there is none."""
        with self._early_lock:
            early, self._early_sync = self._early_sync, None
        if early is not None and early.token != token:
            early.close()
            return None
        return early

    def _drop_early_sync(self) -> None:
        with self._early_lock:
            early, self._early_sync = self._early_sync, None
        if early is not None:
            early.close()

    def sync(self, token: str | None) -> SyncDelta:
        """What changed since `token` (RFC 6578 sync-collection, `synccollection.py`)."""
        return synccollection.sync(self._client, self, token)

    def sync_with_data(self, token: str | None = None) -> SyncStream | None:
        """The sync-collection from `token` with the changed items' data, streamed
        (`synccollection.py`)."""
        return synccollection.sync_with_data(self._client, self, token)

    def list_etags(self) -> dict[str, str | None]:
        return self.members(
            member_etags(self._propfind((xb.GETETAG, xb.RESOURCETYPE), "1"), self.path)
        )

    def members(self, listing: Mapping[str, _V]) -> dict[str, _V]:
        """The entries of a server listing that are items of this collection. The others
        (another collection's item, "../x", an href on another host) are never synced, read,
        written or deleted; each is reported once per run."""
        members = {href: v for href, v in listing.items() if is_member(href, self.path)}
        for href in listing.keys() - members.keys() - {self.path}:
            with self._ignored_lock:
                if href in self._ignored:
                    continue
                self._ignored.add(href)
            log.warning(
                "%s: the server listed %s, which is not an item of this collection; ignored",
                self.url, href,
            )
        return members

    def multiget(self, hrefs: Sequence[str]) -> Iterator[Fetched]:
        """The items at `hrefs`, in batches (`multiget.py`)."""
        return multiget.fetch(self._client, self, hrefs)

    # -- writing ---------------------------------------------------------------------------

    def href_for(self, uid: str) -> str:
        return href_for(self.path, uid, suffix_for(self.kind))

    def _item_url(self, href: str) -> str:
        """Where to write or delete `href`: only ever an item of this collection."""
        path = normalize_href(href, self.url)
        if not is_member(path, self.path):
            raise DavError(f"{href} is not an item of {self.url}; not written or deleted")
        return urljoin(self._client.origin, path)

    def create(self, href: str, data: bytes) -> str | None:
        return self._put(href, data, {"If-None-Match": "*"}, "it already exists on the server")

    def update(self, href: str, data: bytes, etag: str | None) -> str | None:
        condition = {} if etag is None else {"If-Match": etag}
        return self._put(href, data, condition, "it changed on the server since it was read")

    def _put(self, href: str, data: bytes, condition: Mapping[str, str], why: str) -> str | None:
        url = self._item_url(href)
        headers = {"Content-Type": MEDIA_TYPE[self.kind], **condition}
        response = self._write("PUT", url, headers, data)
        if response.status_code == 412:
            raise PreconditionFailed(f"PUT {href} refused (412): {why}", 412)
        if response.status_code // 100 != 2:
            raise self._client.failure("PUT", url, response)
        return response.headers.get("etag") or None

    def _write(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None
    ) -> httpx.Response:
        """An item write, through the collection's `WriteGate` (narrowed by 423/5xx answers)."""
        with self._writes.slot():
            return self._client.request(
                method, url, headers=headers, content=data, on_retry=self._writes.answered
            )

    def delete(self, href: str, etag: str | None) -> None:
        url = self._item_url(href)
        headers = {} if etag is None else {"If-Match": etag}
        response = self._write("DELETE", url, headers, None)
        if response.status_code == 412:
            raise PreconditionFailed(
                f"DELETE {href} refused (412): it changed on the server since it was read", 412
            )
        if response.status_code != 404 and response.status_code // 100 != 2:
            raise self._client.failure("DELETE", url, response)

    def ensure_exists(self, displayname: str | None = None) -> None:
        """Create the collection if needed: extended MKCOL for an addressbook, MKCALENDAR
        (events and tasks) for a calendar."""
        if self.exists:
            return
        name = displayname or self.displayname
        if self.kind == "contacts":
            method, body = "MKCOL", xb.mkcol_addressbook(name)
        else:
            method, body = "MKCALENDAR", xb.mkcalendar(name)
        response = self._client.request(method, self.url, headers=_XML, content=body)
        if response.status_code in (405, 409):
            self.load()  # created meanwhile by someone else: fine if it is the right kind
            if self.exists:
                return
        if response.status_code // 100 != 2:
            raise self._client.failure(method, self.url, response)
        self.exists = True

    def can_bulk_create(self) -> bool:
        return bulkcreate.can_bulk_create(self._client, self)

    def bulk_create(self, items: Sequence[tuple[str, bytes]]) -> dict[str, Created]:
        """The new collection with all its items at once (`bulkcreate.py`)."""
        return bulkcreate.bulk_create(self._client, self, items)
