"""A sync-collection answer that carries the items' data, parsed as it streams in.

A first pairing asks one sync-collection (empty token) for `getetag` and `address-data` /
`calendar-data` together, where the quirks table says the server answers that well: the listing
and every download in one request, instead of a listing and one multiget per ~50 items. The
answer holds the whole collection (6.8 MB for 10 000 contacts, far more with photos), so it is
never held in memory: a worker thread reads it chunk by chunk, parses each DAV:response the
moment it ends, and hands it over a small bounded queue to the thread that applies it. Memory
stays at a few items whatever the collection holds, and writing overlaps downloading.

Hardened like `multistatus.parse_xml`: defusedxml's expat parser refuses any DTD or entity
declaration before it is used; each DAV:response may take at most `STREAMED_ITEM` bytes of the
answer (counted per item, so a legitimately large answer is fine and one endless item is not);
the whole exchange stays under the request deadline (`bounds.py`), which also ends an endless
stream of small responses.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Final

import defusedxml
from defusedxml.ElementTree import DefusedXMLParser

from davsync.dav.api import DavError, Fetched
from davsync.dav.bounds import AnswerLimit, AnswerTooLarge
from davsync.dav.multistatus import parse_response
from davsync.dav.xmlbodies import DAV, GETETAG, SYNC_TOKEN, qname

_MIB: Final = 1 << 20
# One DAV:response of a streamed answer: the same bound as a whole multiget batch, so an item
# a multiget can fetch is never refused here.
STREAMED_ITEM: Final = AnswerLimit(64 * _MIB, "one item of a sync listing with data")
_RESPONSE: Final = qname(DAV, "response")
_MULTISTATUS: Final = qname(DAV, "multistatus")
# XML elements one response may open (a vCard with a photo is one text node; a DAV:response is
# about 10 elements): a flood of tiny elements would cost ~100 bytes of memory per 3 bytes read.
_MAX_ELEMENTS: Final = 1000
# Parsed items are handed to the applying thread this many at a time (one hand-over per
# item, two lock round trips each, cost about 0.3 s of a 10 000-contact pairing), and at most
# a few multiget batches' worth wait in the queue.
_HANDOVER: Final = 20
_QUEUE_ITEMS: Final = 100
_END: Final = object()


class _Target:
    """An ElementTree parser target that builds one DAV:response at a time and drops it from
    the tree once handed on, so the tree never holds more than the response being read."""

    def __init__(self, url: str, on_response: Callable[[ET.Element], None]) -> None:
        self._url = url
        self._builder = ET.TreeBuilder()
        self._on_response = on_response
        self._open: list[ET.Element] = []
        self._elements = 0  # opened since the last top-level element ended
        self.sync_token: str | None = None
        self.root_tag: str | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._elements += 1
        if self._elements > _MAX_ELEMENTS:
            raise DavError(f"{self._url}: one response of the answer holds more than "
                           f"{_MAX_ELEMENTS} XML elements; not read further")
        element = self._builder.start(tag, attrib)
        if self.root_tag is None:
            self.root_tag = tag
        self._open.append(element)

    def end(self, tag: str) -> None:
        element = self._builder.end(tag)
        self._open.pop()
        if len(self._open) != 1:
            return
        self._elements = 0
        if tag == _RESPONSE:
            self._on_response(element)
        elif tag == SYNC_TOKEN:
            self.sync_token = (element.text or "").strip() or None
        self._open[0].remove(element)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> None:
        self._builder.close()


class ResponseReader:
    """Feeds an answer's bytes to a hardened incremental parser; `on_response` gets each
    top-level DAV:response as it ends. Every failure is a DavError naming `url`, or
    AnswerTooLarge for one response over `STREAMED_ITEM`."""

    def __init__(self, url: str, on_response: Callable[[ET.Element], None]) -> None:
        self._url = url
        self._target = _Target(url, self._counted(on_response))
        self._parser = DefusedXMLParser(target=self._target, forbid_dtd=True)
        self._since_last = 0  # bytes fed since the last complete response

    def _counted(self, on_response: Callable[[ET.Element], None]) -> Callable[[ET.Element], None]:
        def handle(element: ET.Element) -> None:
            self._since_last = 0
            on_response(element)
        return handle

    def feed(self, chunk: bytes) -> None:
        self._since_last += len(chunk)
        self._guard(lambda: self._parser.feed(chunk))
        if self._since_last > STREAMED_ITEM.size:
            raise AnswerTooLarge(STREAMED_ITEM)

    def close(self) -> str | None:
        """End of the answer: the sync-token it carried (None if it had none)."""
        self._guard(self._parser.close)
        if self._target.root_tag != _MULTISTATUS:
            raise DavError(f"{self._url}: expected a DAV:multistatus answer, got "
                           f"<{(self._target.root_tag or '')[:60]}>")
        return self._target.sync_token

    def _guard(self, step: Callable[[], object]) -> None:
        try:
            step()
        except defusedxml.DefusedXmlException as exc:
            raise DavError(
                f"{self._url}: the server's answer uses XML DTDs or entities "
                f"({type(exc).__name__}); refusing to parse it"
            ) from None
        except ET.ParseError as exc:
            raise DavError(
                f"{self._url}: the server's answer is not well-formed XML ({exc})"
            ) from None


class SyncStream:
    """The items of one sync-collection-with-data answer, in the order the server sent them.

    `start(consume)` runs `consume(reader_callback)` (the request) on `pool`; iterating yields a
    `Fetched` per response: with data, or without it (`data` None, `status` the response's own:
    404 for a deleted member, None when the server listed it without its data, to be fetched by
    multiget). `sync_token` is known once the iteration ended. `close()` stops the request if
    the caller leaves early."""

    def __init__(self, url: str, to_fetched: Callable[[ET.Element], Fetched | None]) -> None:
        self.url = url
        self.sync_token: str | None = None
        self._to_fetched = to_fetched
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_ITEMS // _HANDOVER)
        self._batch: list[Fetched] = []  # parsed, not yet handed over
        self._stopped = threading.Event()
        self._first: object = None
        # The (getctag, sync-token) the items are at, asked by a request of its own once the
        # answer was built (a first pairing on Radicale: `synccollection`); None: not asked.
        self.marks_read: Future[tuple[str | None, str | None]] | None = None

    # -- the worker side ------------------------------------------------------------------

    def read(self, chunks: Iterable[bytes]) -> None:
        """Parse a streamed 207's body (its decoded `chunks`) into the queue; runs on the
        worker thread. What each chunk completed is handed over before the next is read, so
        a slow server never keeps parsed items from the applying thread."""
        reader = ResponseReader(self.url, self._put_element)
        for chunk in chunks:
            reader.feed(chunk)
            self._hand_over()
        self.sync_token = reader.close()

    def _put_element(self, element: ET.Element) -> None:
        fetched = self._to_fetched(element)
        if fetched is not None:
            self._batch.append(fetched)
            if len(self._batch) >= _HANDOVER:
                self._hand_over()

    def _hand_over(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._put(batch)

    def _put(self, value: object) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(value, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def finish(self, error: BaseException | None) -> None:
        """The worker's last word: the end of the answer, or why it failed."""
        with contextlib.suppress(_Stopped):
            self._hand_over()  # what was parsed before a failure is applied, as it came
            self._put(_END if error is None else _Failed(error))

    # -- the consuming side ---------------------------------------------------------------

    def first(self) -> None:
        """Wait for the first item (or the end): raises what failed before any item came, so
        the caller can still take another path with nothing applied."""
        self._first = self._queue.get()
        if isinstance(self._first, _Failed):
            raise self._first.error

    def __iter__(self) -> Iterator[Fetched]:
        value = self._first if self._first is not None else self._queue.get()
        self._first = None
        while value is not _END:
            if isinstance(value, _Failed):
                raise value.error
            assert isinstance(value, list)
            yield from value
            value = self._queue.get()

    def marks(self) -> tuple[str | None, str | None]:
        """(getctag, sync-token) the items handed out are at, once the iteration ended: the
        answer's own token, or the ones read beside a first pairing's query (waited for);
        None for what is not known (not asked, or the collection changed meanwhile)."""
        if self.marks_read is None:
            return None, self.sync_token
        return self.marks_read.result()

    def close(self) -> None:
        self._stopped.set()


class _Stopped(Exception):
    """The consumer left: stop reading the answer."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def fetched_from(element: ET.Element, url: str, data_prop: str) -> Fetched:
    """One streamed response as what a multiget would have given for it."""
    response = parse_response(element, url)
    if response.status is not None and response.status // 100 != 2:
        return Fetched(response.href, None, None, f"HTTP {response.status}", response.status)
    data = response.props.get(data_prop)
    if data is None or data.text is None:
        return Fetched(response.href, response.text(GETETAG), None, None, None)
    return Fetched(response.href, response.text(GETETAG), data.text.encode("utf-8"))
