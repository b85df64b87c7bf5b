"""One addressbook or calendar on the server: `Collection` implements the `DavCollection`
contract (`api.py`) over a `DavClient`.

It only builds bodies (`xmlbodies`), reads answers (`multistatus`) and decides; every request
goes through `DavClient.request`. Hrefs the server lists that are not items of this collection
are never read, written or deleted.
"""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urljoin

import httpx

from davsync.core.kinds import Kind
from davsync.dav import xmlbodies as xb
from davsync.dav.api import (
    Created,
    DavError,
    Fetched,
    InvalidSyncToken,
    PreconditionFailed,
    Probe,
    SyncDelta,
)
from davsync.dav.bounds import LISTING, MULTIGET, SMALL
from davsync.dav.bulkbody import calendar_body, vcard_body
from davsync.dav.bulkmap import map_bulk, read_uid
from davsync.dav.hrefs import (
    href_for,
    is_member,
    normalize_href,
    radicale_bulk_fits,
    suffix_for,
    unique,
)
from davsync.dav.multistatus import (
    DavResponse,
    Multistatus,
    SyncAccumulator,
    error_conditions,
    member_etags,
    parse_multistatus,
    read_sync_page,
)
from davsync.dav.quirks import identify, rating
from davsync.dav.syncstream import SyncStream, fetched_from
from davsync.dav.writegate import WriteGate

if TYPE_CHECKING:
    from davsync.dav.client import DavClient

log = logging.getLogger(__name__)

_MEDIA_TYPE: Final[Mapping[str, str]] = {
    "contacts": "text/vcard; charset=utf-8",
    "calendars": "text/calendar; charset=utf-8",
}
_MAX_SYNC_PAGES: Final = 1000
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

    def __repr__(self) -> str:
        return f"Collection({self.url!r}, {self.kind!r}, exists={self.exists})"

    # -- reading ---------------------------------------------------------------------------

    def _propfind(self, props: Sequence[str], depth: str) -> Multistatus:
        response = self._client.request(
            "PROPFIND", self.url, headers={"Depth": depth, **_XML}, content=xb.propfind(props),
            limit=SMALL if depth == "0" else LISTING,
        )
        if response.status_code == 404:  # gone (or never made): create it before writing
            self.exists = False
        if response.status_code != 207:
            raise self._client.failure("PROPFIND", self.url, response)
        return parse_multistatus(response.content, self.url)

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
        first run needs no second probe; not for the sync-token, which on Radicale would walk
        every item a second time."""
        response = self._client.request(
            "PROPFIND",
            self.url,
            headers={"Depth": "0", **_XML},
            content=xb.propfind((xb.RESOURCETYPE, *xb.PROBE_PROPS)),
        )
        if response.status_code == 404:
            self.exists = False
            return
        if response.status_code != 207:
            raise self._client.failure("PROPFIND", self.url, response)
        try:
            own = self._own(parse_multistatus(response.content, self.url))
        except DavError as exc:
            if exc.status != 404:
                raise
            self.exists = False
            return
        self._check_type(own)
        self.loaded_probe = self._ctag_probe(own)
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

    def probe(self) -> Probe:
        """getctag alone (`xb.PROBE_PROPS`); servers without getctag get a second PROPFIND
        for the sync-token."""
        found = self._ctag_probe(self._own(self._propfind(xb.PROBE_PROPS, "0")))
        return found if found is not None else self._token_probe()

    def read_probe(self, status: int, content: bytes) -> Probe | None:
        """The probe from an answer to `xb.PROBE_PROPS` sent some other way (the early
        probe); None when it is not a usable 207 with a getctag: then call `probe()`."""
        if status != 207:
            return None
        try:
            return self._ctag_probe(self._own(parse_multistatus(content, self.url)))
        except DavError as exc:
            log.debug("%s: early probe answer not used: %s", self.url, exc)
            return None

    def _ctag_probe(self, own: DavResponse) -> Probe | None:
        self._observe(own)
        ctag = own.text(xb.GETCTAG)
        return Probe(ctag, None) if ctag is not None else None

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

    def sync(self, token: str | None) -> SyncDelta:
        merged = SyncAccumulator()
        current = token
        for _ in range(_MAX_SYNC_PAGES):
            page = read_sync_page(self._sync_report(current), self.path, self.url)
            merged.add(page)
            if not page.truncated:
                self.last_sync_token = page.token
                deleted = self._members(dict.fromkeys(merged.deleted))
                return SyncDelta(self._members(merged.changed), frozenset(deleted), page.token)
            if page.token == current:
                raise DavError(f"{self.url}: sync answer truncated (507) without a new token")
            current = page.token
        raise DavError(f"{self.url}: sync still truncated after {_MAX_SYNC_PAGES} pages")

    def _sync_report(self, token: str | None) -> Multistatus:
        response = self._client.request(
            "REPORT", self.url, headers={"Depth": "0", **_XML}, content=xb.sync_collection(token),
            limit=LISTING,
        )
        status = response.status_code
        if status in (403, 412):
            conditions = error_conditions(response.content)
            detail = "valid-sync-token" if xb.VALID_SYNC_TOKEN in conditions else f"HTTP {status}"
            raise InvalidSyncToken(
                f"{self.url}: the server refused the sync token ({detail}); a full listing "
                "is needed",
                status,
            )
        if status != 207:
            raise self._client.failure("REPORT sync-collection", self.url, response)
        ms = parse_multistatus(response.content, self.url)
        self._client.learn(identify(sync_token=ms.sync_token))
        return ms

    def sync_with_data(self) -> SyncStream | None:
        """A full sync-collection (empty token) that carries every item's data, streamed
        (`syncstream.py`); None where the quirks table does not say the server answers it
        well. Started on a worker; returns once the first item (or the end) arrived, and
        raises DavError when the request failed before that (refused: 400/403/507, malformed,
        truncated), so the caller can take the listing + multiget path with nothing applied."""
        if rating(self._client.server, "sync_collection_data") != "supported":
            return None
        stream = SyncStream(self.url, self._streamed)
        self._client.executor().submit(self._stream_sync, stream)
        try:
            stream.first()
        except BaseException:
            stream.close()
            raise
        return stream

    def _stream_sync(self, stream: SyncStream) -> None:
        """The request itself (on a worker thread): its outcome goes into `stream`."""
        data_prop = xb.ADDRESS_DATA if self.kind == "contacts" else xb.CALENDAR_DATA
        error: BaseException | None = None
        try:
            response = self._client.request(
                "REPORT", self.url, headers={"Depth": "0", **_XML},
                content=xb.sync_collection(None, (xb.GETETAG, data_prop)), consume=stream.read,
            )
            if response.status_code != 207:
                raise self._client.failure("REPORT sync-collection", self.url, response)
            if stream.sync_token is None:
                raise DavError(f"{self.url}: the sync-collection answer has no sync-token")
            self.last_sync_token = stream.sync_token
            self._client.learn(identify(sync_token=stream.sync_token))
        except BaseException as exc:  # handed to the consuming thread, raised there
            error = exc
        stream.finish(error)

    def _streamed(self, element: ET.Element) -> Fetched | None:
        """One response of the streamed answer as a `Fetched`; None for the collection's own
        (a 507 there means truncated: refused, as nothing here follows continuations) and for
        hrefs that are not items of this collection (reported once, as in any listing)."""
        data_prop = xb.ADDRESS_DATA if self.kind == "contacts" else xb.CALENDAR_DATA
        fetched = fetched_from(element, self.url, data_prop)
        if fetched.href == self.path:
            if fetched.status == 507:
                raise DavError(f"{self.url}: sync answer truncated (507); not streamed")
            return None
        return fetched if self._members({fetched.href: fetched}) else None

    def list_etags(self) -> dict[str, str | None]:
        return self._members(
            member_etags(self._propfind((xb.GETETAG, xb.RESOURCETYPE), "1"), self.path)
        )

    def _members(self, listing: Mapping[str, _V]) -> dict[str, _V]:
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
        asked = unique(normalize_href(href, self.url) for href in hrefs)
        wanted = [href for href in asked if is_member(href, self.path)]
        for href in asked:
            if not is_member(href, self.path):
                yield Fetched(href, None, None, f"not an item of {self.url}; not read")
        size = self._client.multiget_batch
        batches = [wanted[i : i + size] for i in range(0, len(wanted), size)]
        if len(batches) <= 1:
            for batch in batches:
                yield from self._fetch_batch(batch, retry_server_errors=True)
            return
        pool = self._client.executor()
        queued = deque(batches)
        running: deque[Future[list[Fetched]]] = deque()
        try:
            while queued or running:
                while queued and len(running) < self._client.concurrency:
                    running.append(pool.submit(self._fetch_batch, queued.popleft(), True))
                yield from running.popleft().result()
        finally:
            for future in running:
                future.cancel()

    def _fetch_batch(self, hrefs: list[str], retry_server_errors: bool) -> list[Fetched]:
        """One multiget REPORT; on a whole-batch failure, bisect until the bad href is alone."""
        try:
            response = self._client.request(
                "REPORT",
                self.url,
                headers={"Depth": "1", **_XML},
                content=xb.multiget(self.kind, hrefs),
                retry_server_errors=retry_server_errors,
                limit=MULTIGET,
            )
            if response.status_code != 207:
                raise self._client.failure("REPORT multiget", self.url, response)
            ms = parse_multistatus(response.content, self.url)
        except DavError as exc:
            if len(hrefs) == 1:
                return [Fetched(hrefs[0], None, None, error=str(exc))]
            middle = len(hrefs) // 2
            return self._fetch_batch(hrefs[:middle], False) + self._fetch_batch(
                hrefs[middle:], False
            )
        return self._match(hrefs, ms)

    def _match(self, hrefs: list[str], ms: Multistatus) -> list[Fetched]:
        data_prop = xb.ADDRESS_DATA if self.kind == "contacts" else xb.CALENDAR_DATA
        by_href = self._members({response.href: response for response in ms.responses})
        fetched: list[Fetched] = []
        for href in hrefs:
            response = by_href.get(href)
            if response is None:
                fetched.append(Fetched(href, None, None, "the server did not answer for it"))
            elif response.status is not None and response.status // 100 != 2:
                fetched.append(
                    Fetched(href, None, None, f"HTTP {response.status}", response.status)
                )
            elif data_prop not in response.props or response.props[data_prop].text is None:
                fetched.append(Fetched(href, None, None, "the server sent no data for it"))
            else:
                data = (response.props[data_prop].text or "").encode("utf-8")
                fetched.append(Fetched(href, response.text(xb.GETETAG), data))
        return fetched

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
        headers = {"Content-Type": _MEDIA_TYPE[self.kind], **condition}
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
        return (
            rating(self._client.server, "bulk_put_new_collection") == "supported"
            and not self.exists
        )

    def bulk_create(self, items: Sequence[tuple[str, bytes]]) -> dict[str, Created]:
        """One PUT of every item to the new collection URL, then one listing to learn where
        each landed. UIDs whose file name the server's OS would refuse go one by one."""
        if self.exists:
            raise DavError(f"{self.url}: bulk create refused, the collection already exists")
        repeated = [uid for uid, n in Counter(uid for uid, _ in items).items() if n > 1]
        if repeated:
            raise DavError(f"{self.url}: bulk create needs unique UIDs; {repeated[0]!r} repeats")
        suffix = suffix_for(self.kind)
        bulk = [(uid, data) for uid, data in items if radicale_bulk_fits(uid, suffix)]
        alone = [(uid, data) for uid, data in items if not radicale_bulk_fits(uid, suffix)]
        if not bulk:
            self.ensure_exists()
            return {uid: Created(self.href_for(uid), self.create(self.href_for(uid), data))
                    for uid, data in alone}
        self._put_collection(bulk)
        single_hrefs = {uid: self.href_for(uid) for uid, _ in alone}
        for uid, data in alone:
            self.create(single_hrefs[uid], data)
        listing = self.sync(None).changed
        mapping = map_bulk(
            [uid for uid, _ in bulk], suffix, self.path, listing,
            server_sorts=self.kind == "calendars",
        )
        created = dict(mapping.created)
        created.update({uid: Created(href, listing.get(href)) for uid, href in
                        single_hrefs.items()})
        if mapping.unmatched_uids:
            created.update(self._read_uids(mapping.unmatched_hrefs, set(mapping.unmatched_uids)))
        return created

    def _put_collection(self, bulk: Sequence[tuple[str, bytes]]) -> None:
        if self.kind == "contacts":
            body = vcard_body(bulk)
        else:
            body = calendar_body(bulk, self.displayname)
        response = self._client.request(
            "PUT", self.url,
            headers={"Content-Type": _MEDIA_TYPE[self.kind], "If-None-Match": "*"},
            content=body,
        )
        if response.status_code == 412:
            raise PreconditionFailed(
                f"PUT {self.url} refused (412): the collection appeared on the server "
                "meanwhile; run the sync again", 412,
            )
        if response.status_code // 100 != 2:
            raise self._client.failure("PUT (bulk create)", self.url, response)
        self.exists = True
        if self.kind == "contacts" and self.displayname:
            self._set_displayname(self.displayname)

    def _set_displayname(self, displayname: str) -> None:
        response = self._client.request(
            "PROPPATCH", self.url, headers=_XML, content=xb.proppatch_displayname(displayname)
        )
        if response.status_code // 100 != 2:
            raise self._client.failure("PROPPATCH", self.url, response)

    def _read_uids(self, hrefs: Sequence[str], wanted: set[str]) -> dict[str, Created]:
        """Fallback for names we could not predict: read the UIDs from the items themselves."""
        found: dict[str, Created] = {}
        for item in self.multiget(hrefs):
            uid = None if item.data is None else read_uid(item.data)
            if uid in wanted and uid is not None:
                found[uid] = Created(item.href, item.etag)
        missing = wanted - set(found)
        if missing:
            raise DavError(
                f"{self.url}: after the bulk upload {len(missing)} item(s) could not be found "
                f"on the server, e.g. UID {sorted(missing)[0]!r}"
            )
        return found
