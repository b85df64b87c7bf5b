"""The server is not trusted: what DavClient and Collection refuse, ignore and bound.

The loopback sockets here are hostile peers (a trickle, a flood), not stand-ins for a DAV
server; httpx.MockTransport serves canned multistatus bodies to the parsing paths. The same
behaviours against a real Radicale behind a fault-injecting proxy are in
tests/integration/test_dav_hostile.py.
"""

from __future__ import annotations

import gzip
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

import davsync.dav.multiget as multiget_module
from davsync.dav.api import DavError, DavUnreachable, RequestCounter
from davsync.dav.bounds import LISTING, SMALL, AnswerLimit, install_deadline
from davsync.dav.client import DavClient
from davsync.dav.discovery import find_collection, list_home, open_collection
from davsync.dav.earlyprobe import EarlyProbe, EarlyRoute
from davsync.dav.hrefs import is_member, normalize_href, same_origin, without_userinfo
from davsync.secret import Secret
from tests.fixtures.peer import scripted_peer

BASE = "http://127.0.0.1:9/"
COLLECTION = "http://127.0.0.1:9/alice/contacts/"


class FixedAuth:
    def credentials(self) -> tuple[str, Secret]:
        return "alice", Secret("s3cret-pw")

    def refresh(self) -> bool:
        return False


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object
                ) -> DavClient:
    return DavClient(BASE, FixedAuth(), transport=httpx.MockTransport(handler),
                     sleep=lambda _: None, **kwargs)  # type: ignore[arg-type]


def multistatus(*responses: str, token: str | None = None) -> bytes:
    tail = f"<sync-token>{token}</sync-token>" if token else ""
    return (f'<?xml version="1.0"?><multistatus xmlns="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:carddav">{"".join(responses)}{tail}'
            "</multistatus>").encode()


def item(href: str, etag: str = '"e"', data: str | None = None) -> str:
    card = f"<C:address-data>{data}</C:address-data>" if data is not None else ""
    return (f"<response><href>{href}</href><propstat><prop><getetag>{etag}</getetag>{card}"
            "</prop><status>HTTP/1.1 200 OK</status></propstat></response>")


# -- hrefs: origins, user info, membership --------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("a.vcf", True),
        ("/alice/contacts/a%20b.vcf", True),
        ("http://127.0.0.1:9/alice/contacts/a.vcf", True),
        ("../other/evil.vcf", False),
        ("/alice/other/evil.vcf", False),
        ("/alice/contacts/%2e%2e/other/evil.vcf", False),
        ("/alice/contacts/%2E%2E", False),
        ("/alice/contacts/sub/x.vcf", False),
        ("/alice/contacts/sub/", False),
        ("/alice/contacts/", False),
        ("http://evil.example/alice/contacts/a.vcf", False),
        ("http://127.0.0.1:10/alice/contacts/a.vcf", False),
        ("https://127.0.0.1:9/alice/contacts/a.vcf", False),
    ],
)
def test_only_direct_members_of_the_collection_are_members(href: str, expected: bool) -> None:
    assert is_member(normalize_href(href, COLLECTION), "/alice/contacts/") is expected


def test_origins_compare_scheme_host_and_effective_port() -> None:
    assert same_origin("http://Host/a", "http://host:80/b")
    assert same_origin("https://alice:pw@host/", "https://host:443/")
    assert not same_origin("http://host/", "https://host/")
    assert not same_origin("http://host:8080/", "http://host/")
    assert without_userinfo("http://alice:p%40ss@host:5232/dav/") == "http://host:5232/dav/"
    assert without_userinfo("https://host/x") == "https://host/x"


# -- item 6: no credential, no data to another origin ---------------------------------------


def test_a_home_set_on_another_server_is_refused_before_any_request_goes_there() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        home = ("<C:addressbook-home-set><href>http://evil.example:81/alice/</href>"
                "</C:addressbook-home-set>")
        return httpx.Response(207, content=multistatus(
            f"<response><href>/</href><propstat><prop>{home}</prop>"
            "<status>HTTP/1.1 200 OK</status></propstat></response>"))

    with mock_client(handler) as dav, pytest.raises(DavError) as info:
        find_collection(dav, "contacts", "contacts")
    assert all(url.startswith(BASE) for url in sent)
    assert "http://evil.example:81/alice/contacts/" in str(info.value)
    assert "[server] url" in str(info.value) and "s3cret" not in str(info.value)


def test_writes_and_deletes_only_touch_items_of_the_collection() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url}")
        return httpx.Response(204)

    with mock_client(handler) as dav:
        remote = open_collection(dav, COLLECTION, "contacts")
        for href in ("/alice/other/evil.vcf", "http://evil.example/alice/contacts/a.vcf",
                     "../other/x.vcf"):
            with pytest.raises(DavError, match="not an item of"):
                remote.delete(href, '"e"')
            with pytest.raises(DavError, match="not an item of"):
                remote.update(href, b"BEGIN:VCARD\r\nEND:VCARD\r\n", '"e"')
        remote.delete("/alice/contacts/a.vcf", '"e"')
    assert sent == ["DELETE http://127.0.0.1:9/alice/contacts/a.vcf"]


# -- item 7: hrefs outside the collection are ignored, reported once -------------------------

OUTSIDE = ("../other/evil.vcf", "http://evil.example:81/alice/contacts/far.vcf",
           "/alice/contacts/sub/deep.vcf", "//evil.example:x/alice/contacts/port.vcf")


def test_listings_ignore_and_report_once_what_is_not_in_the_collection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        listed = [item("/alice/contacts/a.vcf"), *(item(h) for h in OUTSIDE)]
        if request.method == "PROPFIND":
            return httpx.Response(207, content=multistatus(*listed))
        body = request.content.decode()
        if "sync-collection" in body:
            gone = ("<response><href>../other/gone.vcf</href>"
                    "<status>HTTP/1.1 404 Not Found</status></response>")
            return httpx.Response(207, content=multistatus(*listed, gone, token="t1"))
        return httpx.Response(207, content=multistatus(
            item("/alice/contacts/a.vcf", data="BEGIN:VCARD"),
            *(item(h, data="BEGIN:VCARD") for h in OUTSIDE)))

    with mock_client(handler) as dav:
        remote = open_collection(dav, COLLECTION, "contacts")
        delta = remote.sync(None)
        again = remote.sync(None)
        etags = remote.list_etags()
        fetched = list(remote.multiget(["/alice/contacts/a.vcf", "../other/evil.vcf"]))
    assert dict(delta.changed) == {"/alice/contacts/a.vcf": '"e"'} and not delta.deleted
    assert again == delta and etags == {"/alice/contacts/a.vcf": '"e"'}
    assert [(f.href, f.data is not None) for f in fetched] == [
        ("/alice/other/evil.vcf", False), ("/alice/contacts/a.vcf", True)]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for href in ("/alice/other/evil.vcf", "http://evil.example:81/alice/contacts/far.vcf",
                 "/alice/contacts/sub/deep.vcf", "/alice/other/gone.vcf",
                 "invalid-origin:/alice/contacts/port.vcf"):
        assert sum(href + "," in w for w in warnings) == 1, (href, warnings)


# -- item 9: an overall deadline per request --------------------------------------------------


@contextmanager
def trickling_server(answer: bytes, pause: float) -> Iterator[int]:
    """Accepts one connection, reads the request, then sends `answer` a byte at a time."""
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        try:
            for i in range(len(answer)):
                if stop.wait(pause):
                    return
                conn.sendall(answer[i : i + 1])
        except OSError:
            pass  # the client hung up, as it should

    with scripted_peer(serve) as port:
        yield port


SLOW_ANSWER = (b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\n"
               b"Content-Length: 400\r\n\r\n" + b" " * 400)


def test_a_trickled_answer_ends_at_the_request_deadline_not_never() -> None:
    """Status line, headers and body one byte per 50 ms (about 25 s in all): each read is
    quick, so only the overall deadline can end it."""
    with trickling_server(SLOW_ANSWER, 0.05) as port:
        url = f"http://127.0.0.1:{port}/alice/contacts/"
        with DavClient(url, FixedAuth(), read_timeout=5, request_timeout=0.5,
                       sleep=lambda _: None) as dav, pytest.raises(DavUnreachable) as info:
            dav.request("PROPFIND", url)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "did not finish within 0.5 s" in message
    assert "request_timeout" in message


def test_the_deadline_reaches_every_connection_pool_proxies_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx builds its pools without a hook for the backend: `install_deadline` reaches into
    them, and this fails if an httpx upgrade moves them."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    with httpx.Client() as http:
        assert install_deadline(http) == 2  # the direct pool and the proxy's


def test_the_early_probe_hangs_up_at_its_deadline() -> None:
    with trickling_server(SLOW_ANSWER, 0.05) as port:
        early = EarlyProbe(f"http://127.0.0.1:{port}/a/", b"<x/>",
                           EarlyRoute("Basic eA==", None, 2, 5, RequestCounter(), deadline=0.5))
        assert early.answer() is None


# -- item 10: a size limit per kind of answer --------------------------------------------------


def test_an_answer_over_its_limit_is_refused_without_quoting_it() -> None:
    huge = b"<" + b"x" * (SMALL.size + 10) + b"/>"
    with (mock_client(lambda _: httpx.Response(207, content=huge)) as dav,
          pytest.raises(DavError) as info):
        open_collection(dav, COLLECTION, "contacts").probe()
    message = str(info.value)
    assert "larger than 1 MiB" in message and len(message) < 400 and "xxxx" not in message


def test_a_compressed_answer_is_limited_by_what_it_unpacks_to() -> None:
    bomb = gzip.compress(b" " * (SMALL.size * 4))  # 4 MiB of spaces in about 4 KB
    assert len(bomb) < 10_000
    answer = httpx.Response(207, content=bomb, headers={"Content-Encoding": "gzip"})
    with (mock_client(lambda _: answer) as dav,
          pytest.raises(DavError, match="larger than 1 MiB")):
        open_collection(dav, COLLECTION, "contacts").probe()


def test_a_real_ten_thousand_item_sync_answer_fits_the_listing_limit() -> None:
    """Radicale's sync-collection form, with UUID hrefs and sha256 etags as Radicale makes."""
    responses = [item(f"/alice/contacts/{n:08x}-1b4e-4c2a-9d55-{n:012x}.vcf",
                      f'"{n:064x}"') for n in range(10_000)]
    body = multistatus(*responses, token="http://radicale.org/ns/sync/" + "f" * 64)
    assert len(body) < LISTING.size // 4
    with mock_client(lambda _: httpx.Response(207, content=body)) as dav:
        delta = open_collection(dav, COLLECTION, "contacts").sync(None)
    assert len(delta.changed) == 10_000


def test_a_multiget_over_its_limit_is_split_until_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(multiget_module, "MULTIGET", AnswerLimit(10_000, "one multiget batch"))
    photo = "P" * 6_000

    def handler(request: httpx.Request) -> httpx.Response:
        hrefs = re.findall(r"<(?:\w+:)?href>([^<]+)<", request.content.decode())
        return httpx.Response(207, content=multistatus(
            *(item(h, data=photo if "big" not in h else photo * 2) for h in hrefs)))

    with mock_client(handler, multiget_batch=4) as dav:
        remote = open_collection(dav, COLLECTION, "contacts")
        fetched = list(remote.multiget(["a.vcf", "b.vcf", "c.vcf", "big.vcf"]))
    assert sorted((f.href.rsplit("/", 1)[1], f.data is not None) for f in fetched) == [
        ("a.vcf", True), ("b.vcf", True), ("big.vcf", False), ("c.vcf", True)]
    failed = next(f for f in fetched if f.data is None)
    assert failed.error is not None and "larger than" in failed.error


def test_a_home_listing_asks_each_getctag_only_for_a_sync() -> None:
    """On Radicale each getctag reads every item of its collection: `davsync collections`,
    doctor and the unknown-name message do not ask it; a sync's listing does (its probes)."""
    bodies: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content.decode())
        return httpx.Response(207, content=multistatus(
            "<response><href>/alice/contacts/</href><propstat><prop><resourcetype>"
            "<collection/><C:addressbook/></resourcetype>"
            '<CS:getctag xmlns:CS="http://calendarserver.org/ns/">c1</CS:getctag>'
            "</prop><status>HTTP/1.1 200 OK</status></propstat></response>"))

    with mock_client(handler) as dav:
        list_home(dav, "http://127.0.0.1:9/alice/", "contacts")
        probed = list_home(dav, "http://127.0.0.1:9/alice/", "contacts", probes=True)
    assert "getctag" not in bodies[0] and "getctag" in bodies[1]
    assert [c.ctag for c in probed] == ["c1"]
