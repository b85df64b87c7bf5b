"""RFC 6578 sync-collection of one collection: the token-paged listing of what changed
(`sync`, 507 continuations followed to the end) and the full sync-collection that carries every
item's data (`sync_with_data`): whether to ask it (the quirks table), the request on a worker
thread, and each streamed response as a `Fetched` of the collection's own items.
`syncstream.py` parses that answer as it streams in.

`Collection.sync` / `sync_with_data` (the `DavCollection` contract) call these; every request
goes through the collection's `DavClient`.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from functools import partial
from typing import TYPE_CHECKING, Final

from davsync.dav import failures
from davsync.dav import xmlbodies as xb
from davsync.dav.api import DavError, Fetched, InvalidSyncToken, PairingStart, SyncDelta
from davsync.dav.bounds import LISTING, AnswerTooLarge
from davsync.dav.earlyprobe import EarlyAnswer, EarlyLost, EarlyOverdue
from davsync.dav.multistatus import (
    Multistatus,
    SyncAccumulator,
    error_conditions,
    parse_multistatus,
    read_sync_page,
)
from davsync.dav.quirks import identify, rating
from davsync.dav.syncstream import SyncStream, fetched_from
from davsync.errors import DavsyncError

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from davsync.dav.client import DavClient
    from davsync.dav.collection import Collection
    from davsync.dav.earlyprobe import EarlySync

log = logging.getLogger(__name__)

_MAX_SYNC_PAGES: Final = 1000


def sync(client: DavClient, collection: Collection, token: str | None) -> SyncDelta:
    """What changed since `token` (None: everything), every page of the answer merged."""
    url = collection.url
    merged = SyncAccumulator()
    current = token
    for _ in range(_MAX_SYNC_PAGES):
        page = read_sync_page(_sync_report(client, url, current), collection.path, url)
        merged.add(page)
        if not page.truncated:
            collection.last_sync_token = page.token
            deleted = collection.members(dict.fromkeys(merged.deleted))
            return SyncDelta(collection.members(merged.changed), frozenset(deleted), page.token)
        if page.token == current:
            raise DavError(f"{url}: sync answer truncated (507) without a new token")
        current = page.token
    raise DavError(f"{url}: sync still truncated after {_MAX_SYNC_PAGES} pages")


def _sync_report(client: DavClient, url: str, token: str | None) -> Multistatus:
    response = client.request(
        "REPORT", url, headers={"Depth": "0", **xb.XML_CONTENT},
        content=xb.sync_collection(token), limit=LISTING,
    )
    status = response.status_code
    if status in (403, 412):
        raise _refused_token(url, status, response.content)
    if status != 207:
        raise client.failure("REPORT sync-collection", url, response)
    ms = parse_multistatus(response.content, url)
    client.learn(identify(sync_token=ms.sync_token))
    return ms


def _refused_token(url: str, status: int, content: bytes) -> InvalidSyncToken:
    conditions = error_conditions(content)
    detail = "valid-sync-token" if xb.VALID_SYNC_TOKEN in conditions else f"HTTP {status}"
    return InvalidSyncToken(
        f"{url}: the server refused the sync token ({detail}); a full listing is needed",
        status,
    )


def sync_with_data(
    client: DavClient, collection: Collection, token: str | None = None
) -> SyncStream | None:
    """What changed since `token` (None: the whole collection) with each item's data, streamed
    (`syncstream.py`); None where the quirks table does not say the server answers it well.
    A sync-collection asking for the data; for the whole collection, where the table says so,
    a mark first (`PairingStart`) and then a query matching every item (Radicale builds that
    answer 2.5 times faster). With the sync-token as the mark the items are at least as new
    as it, and the next sync from it lists again what changed in between, already applied
    (same etag); with getlastmodified, the token read beside the query is kept only if
    nothing changed since that mark (`SyncStream.marks`). Started on a worker;
    returns once the first item (or the end) arrived, and raises DavError when the request
    failed before that (InvalidSyncToken for a token the server no longer knows; refused:
    400/403/507, malformed, truncated), so the caller can take the listing + multiget path
    with nothing applied."""
    if token is not None:  # the token it gave us names the server as well as any answer
        client.learn(identify(sync_token=token))
    if rating(client.server, "sync_collection_data") != "supported":
        return None
    start = None
    if token is None and rating(client.server, "query_all_data") == "supported":
        start = collection.pairing_start()
    stream = SyncStream(collection.url, partial(_streamed, collection))
    early = collection.take_early_sync(token) if start is None else None
    if early is not None:
        client.executor().submit(_stream_early, client, collection, stream, token, early)
    else:
        client.executor().submit(_stream_report, client, collection, stream, token, start)
    try:
        stream.first()
    except BaseException:
        stream.close()
        raise
    return stream


def _stream_report(
    client: DavClient, collection: Collection, stream: SyncStream, token: str | None,
    start: PairingStart | None,
) -> None:
    """The request itself (on a worker thread): its outcome goes into `stream`. With `start`
    (the mark taken before it), a query for every item; else the sync-collection from
    `token`."""
    url = collection.url
    error: BaseException | None = None
    what = "REPORT query" if start is not None else "REPORT sync-collection"
    try:
        response = client.request(
            "REPORT", url,
            headers={"Depth": "1" if start is not None else "0", **xb.XML_CONTENT},
            content=(xb.query_all(collection.kind) if start is not None
                     else xb.sync_with_data(token, collection.kind)),
            consume=(_read_stream(stream) if start is None
                     else partial(_read_and_mark, client, collection, stream, start)),
        )
        if token is not None and response.status_code in (403, 412):
            raise _refused_token(url, response.status_code, response.content)
        if response.status_code != 207:
            raise client.failure(what, url, response)
        if start is not None:
            stream.sync_token = start.token  # None: read beside the query (`marks`)
        _streamed_to_the_end(client, collection, stream, token_in_answer=start is None)
    except BaseException as exc:  # handed to the consuming thread, raised there
        error = exc
    stream.finish(error)


def _stream_early(client: DavClient, collection: Collection, stream: SyncStream,
                  token: str | None, early: EarlySync) -> None:
    """The answer to the sync-collection sent early (`dav.earlyprobe`), on a worker thread:
    a 207 is read into `stream` as the one `_stream_report` gets, and a refused token (403,
    412) raises InvalidSyncToken as it would there; anything else (no answer, a 401, a
    5xx) sends the request again through the client, which owns retries and credential
    refresh."""
    answer = early.take()
    if answer is None:
        log.debug("%s: early sync-collection answer not used; asking again", collection.url)
        _stream_report(client, collection, stream, token, None)
        return
    error: BaseException | None = None
    try:
        if isinstance(answer, EarlyAnswer):  # the token refused (403, 412)
            raise _refused_token(collection.url, answer.status, answer.content)
        try:
            stream.read(answer.chunks())
        except EarlyOverdue as exc:
            raise failures.overdue(client.origin, "REPORT", collection.url,
                                   exc.deadline) from None
        except EarlyLost as exc:
            raise failures.connection_lost(client.origin, "REPORT", collection.url,
                                           str(exc)) from None
        except AnswerTooLarge as exc:
            raise failures.too_large(client.origin, "REPORT", collection.url, exc) from None
        finally:
            answer.close()
        _streamed_to_the_end(client, collection, stream, token_in_answer=True)
    except BaseException as exc:  # handed to the consuming thread, raised there
        error = exc
    stream.finish(error)


def _read_stream(stream: SyncStream) -> Callable[[httpx.Response], None]:
    return lambda response: stream.read(response.iter_bytes())


def _streamed_to_the_end(client: DavClient, collection: Collection, stream: SyncStream, *,
                         token_in_answer: bool) -> None:
    """An answer read whole: its token (`token_in_answer`: a sync-collection's, which must
    carry one) is the collection's, and names the server."""
    if token_in_answer and stream.sync_token is None:
        raise DavError(f"{collection.url}: the sync-collection answer has no sync-token")
    collection.last_sync_token = stream.sync_token
    client.learn(identify(sync_token=stream.sync_token))


def _read_and_mark(client: DavClient, collection: Collection, stream: SyncStream,
                   start: PairingStart, response: httpx.Response) -> None:
    """Read a first pairing's query answer, and ask for the marks beside it. Radicale builds
    the whole answer before its first byte, so once that byte is here one PROPFIND for the
    sync-token (and getctag, `Collection.marks_after`) can go out on another connection:
    Radicale answers it on a thread of its own while the items are applied, instead of the
    pairing waiting for a walk over every item before its query. Where nothing changed
    since `start`, the run after the pairing is a probe alone."""
    if stream.marks_read is None:
        stream.marks_read = client.executor().submit(_marks_after, collection, start)
    stream.read(response.iter_bytes())


def _marks_after(collection: Collection, start: PairingStart) -> tuple[str | None, str | None]:
    """`Collection.marks_after`; when it failed, no getctag and `start`'s token (None for a
    start by getlastmodified: the next run then lists the whole collection once, comparing
    etags, and downloads only what differs)."""
    try:
        ctag, token = collection.marks_after(start)
    except DavsyncError as exc:
        log.debug("%s: marks after the pairing's query not read: %s", collection.url, exc)
        return None, start.token
    if token is None:
        log.info("%s: changed while it was first downloaded; the next run lists it once",
                 collection.url)
    return ctag, token


def _streamed(collection: Collection, element: ET.Element) -> Fetched | None:
    """One response of the streamed answer as a `Fetched`; None for the collection's own
    (a 507 there means truncated: refused, as nothing here follows continuations) and for
    hrefs that are not items of this collection (reported once, as in any listing)."""
    fetched = fetched_from(element, collection.url, xb.data_prop(collection.kind))
    if fetched.href == collection.path:
        if fetched.status == 507:
            raise DavError(f"{collection.url}: sync answer truncated (507); not streamed")
        return None
    return fetched if collection.members({fetched.href: fetched}) else None
