"""Downloading items of one collection by multiget REPORT: batches of `multiget_batch` hrefs,
several batches at once on the client's pool, answers handed on in the order asked; a batch
that fails as a whole is bisected until the bad href is alone, so one item the server cannot
serve costs only itself.

`Collection.multiget` (the `DavCollection` contract) calls this; every request goes through the
collection's `DavClient`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from davsync.dav import xmlbodies as xb
from davsync.dav.api import DavError, Fetched
from davsync.dav.bounds import MULTIGET
from davsync.dav.hrefs import is_member, normalize_href, unique
from davsync.dav.multistatus import Multistatus, parse_multistatus

if TYPE_CHECKING:
    from davsync.dav.client import DavClient
    from davsync.dav.collection import Collection


def fetch(client: DavClient, collection: Collection, hrefs: Sequence[str]) -> Iterator[Fetched]:
    """Every href's `Fetched`; hrefs that are not items of the collection are never asked for."""
    asked = unique(normalize_href(href, collection.url) for href in hrefs)
    wanted = [href for href in asked if is_member(href, collection.path)]
    for href in asked:
        if not is_member(href, collection.path):
            yield Fetched(href, None, None, f"not an item of {collection.url}; not read")
    size = client.multiget_batch
    batches = [wanted[i : i + size] for i in range(0, len(wanted), size)]
    if len(batches) <= 1:
        for batch in batches:
            yield from _fetch_batch(client, collection, batch, retry_server_errors=True)
        return
    pool = client.executor()
    queued = deque(batches)
    running: deque[Future[list[Fetched]]] = deque()
    try:
        while queued or running:
            while queued and len(running) < client.concurrency:
                running.append(
                    pool.submit(_fetch_batch, client, collection, queued.popleft(), True)
                )
            yield from running.popleft().result()
    finally:
        for future in running:
            future.cancel()


def _fetch_batch(
    client: DavClient, collection: Collection, hrefs: list[str], retry_server_errors: bool
) -> list[Fetched]:
    """One multiget REPORT; on a whole-batch failure, bisect until the bad href is alone."""
    try:
        response = client.request(
            "REPORT",
            collection.url,
            headers={"Depth": "1", **xb.XML_CONTENT},
            content=xb.multiget(collection.kind, hrefs),
            retry_server_errors=retry_server_errors,
            limit=MULTIGET,
        )
        if response.status_code != 207:
            raise client.failure("REPORT multiget", collection.url, response)
        ms = parse_multistatus(response.content, collection.url)
    except DavError as exc:
        if len(hrefs) == 1:
            return [Fetched(hrefs[0], None, None, error=str(exc))]
        middle = len(hrefs) // 2
        return _fetch_batch(client, collection, hrefs[:middle], False) + _fetch_batch(
            client, collection, hrefs[middle:], False
        )
    return _match(collection, hrefs, ms)


def _match(collection: Collection, hrefs: list[str], ms: Multistatus) -> list[Fetched]:
    data_prop = xb.data_prop(collection.kind)
    by_href = collection.members({response.href: response for response in ms.responses})
    fetched: list[Fetched] = []
    for href in hrefs:
        response = by_href.get(href)
        if response is None:
            fetched.append(Fetched(href, None, None, "the server did not answer for it"))
        elif response.status is not None and response.status // 100 != 2:
            fetched.append(Fetched(href, None, None, f"HTTP {response.status}", response.status))
        elif data_prop not in response.props or response.props[data_prop].text is None:
            fetched.append(Fetched(href, None, None, "the server sent no data for it"))
        else:
            data = (response.props[data_prop].text or "").encode("utf-8")
            fetched.append(Fetched(href, response.text(xb.GETETAG), data))
    return fetched
