"""The early sync-collection (`dav.earlyprobe.EarlySync`): what it makes of each kind of answer,
and that it stays bounded in time and memory. The sockets here are scripted peers (a 207, a
trickle, a gzip bomb), not stand-ins for a DAV server; against a real Radicale it is in
tests/integration/test_sync_early_probe.py."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from davsync.dav.api import DavError, RequestCounter
from davsync.dav.client import DavClient
from davsync.dav.collection import Collection
from davsync.dav.discovery import open_collection
from davsync.dav.earlyprobe import (
    EarlyAnswer,
    EarlyOverdue,
    EarlyRoute,
    EarlyStream,
    EarlySync,
)
from davsync.dav.xmlbodies import sync_with_data
from davsync.secret import Secret
from tests.fixtures.peer import scripted_peer
from tests.fixtures.ports import free_port

TOKEN = "http://radicale.org/ns/sync/abc"
BODY = sync_with_data(TOKEN, "contacts")


@contextmanager
def answering(head: bytes, body: Iterator[bytes] | bytes = b"", pause: float = 0.0
              ) -> Iterator[tuple[int, threading.Event]]:
    """Accepts one connection, reads the whole request, sends `head` and then `body` (a piece
    every `pause` seconds when it is an iterator); the event is set once the client hung up."""
    hung_up = threading.Event()

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        request = b""
        while not request.endswith(BODY):
            request += conn.recv(65536)
        try:
            conn.sendall(head)
            for piece in [body] if isinstance(body, bytes) else body:
                if stop.wait(pause):
                    return
                conn.sendall(piece)
            conn.settimeout(10)
            while conn.recv(65536):
                pass
        except OSError:
            pass  # the client hung up mid-answer, as it may
        hung_up.set()

    with scripted_peer(serve) as port:
        yield port, hung_up


def early_to(port: int, *, deadline: float = 60.0, counter: RequestCounter | None = None
             ) -> EarlySync:
    return EarlySync(f"http://127.0.0.1:{port}/alice/contacts/", BODY, TOKEN,
                     EarlyRoute("Basic eA==", None, 2, 5, counter or RequestCounter(),
                                deadline=deadline))


def head(status: str, length: int | None, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_207_streams_its_body_and_is_one_report() -> None:
    body = b"<multistatus>" + b"x" * 300_000 + b"</multistatus>"
    counter = RequestCounter()
    with answering(head("207 Multi-Status", len(body)), body) as (port, hung_up):
        early = early_to(port, counter=counter)
        answer = early.take()
        assert isinstance(answer, EarlyStream)
        assert b"".join(answer.chunks()) == body
        assert hung_up.wait(10)  # the connection is closed once the answer is read
    assert counter.count == 1


def test_a_gzip_answer_is_unpacked_a_bounded_piece_at_a_time() -> None:
    """A gzip bomb: 64 KB on the wire that unpack to 64 MB. Each piece handed on stays small,
    so the reader's limit per item (`syncstream.STREAMED_ITEM`) stops it in time."""
    bomb = gzip.compress(b" " * (64 << 20), compresslevel=9)
    assert len(bomb) < 200_000
    with answering(head("207 Multi-Status", len(bomb), "Content-Encoding: gzip"), bomb) as (
            port, hung_up):
        answer = early_to(port).take()
        assert isinstance(answer, EarlyStream)
        pieces = answer.chunks()
        sizes = [len(next(pieces)) for _ in range(50)]
        assert max(sizes) <= 1 << 16 and sum(sizes) > 1 << 20
        answer.close()  # the reader gave up: the connection goes at once
        assert hung_up.wait(10)


@pytest.mark.parametrize(("packed", "why"), [
    (gzip.compress(b"<multistatus/>", mtime=0)[:-12], "ends early"),  # the same on each worker
    (b"\x1f\x8b" + b"not gzip at all", "broken"),
], ids=["truncated", "not-gzip"])
def test_broken_gzip_is_an_error_naming_the_collection(packed: bytes, why: str) -> None:
    with answering(head("207 Multi-Status", len(packed), "Content-Encoding: gzip"),
                   packed) as (port, _):
        answer = early_to(port).take()
        assert isinstance(answer, EarlyStream)
        with pytest.raises(DavError, match=f"alice/contacts/: the answer's gzip data.*{why}"):
            b"".join(answer.chunks())


def test_a_trickled_answer_is_hung_up_on_at_the_deadline() -> None:
    pieces = iter([b"<" for _ in range(1000)])
    with answering(head("207 Multi-Status", 1000), pieces, pause=0.05) as (port, _):
        answer = early_to(port, deadline=0.6).take()
        assert isinstance(answer, EarlyStream)
        started = time.monotonic()
        with pytest.raises(EarlyOverdue, match=r"within 0\.6 s"):
            b"".join(answer.chunks())
        assert time.monotonic() - started < 5


def test_a_refused_token_is_read_whole_for_the_engine() -> None:
    error = (b'<?xml version="1.0"?><error xmlns="DAV:"><valid-sync-token/></error>')
    with answering(head("403 Forbidden", len(error)), error) as (port, _):
        answer = early_to(port).take()
    assert answer == EarlyAnswer(403, error)


@pytest.mark.parametrize("answer_head", [
    head("401 Unauthorized", 0, 'WWW-Authenticate: Basic realm="x"'),
    head("503 Service Unavailable", 0, "Retry-After: 1"),
    head("207 Multi-Status", 0, "Content-Encoding: br"),
    head("403 Forbidden", 2 << 20),  # an error body over 1 MiB is not read
])
def test_anything_else_is_left_to_the_client(answer_head: bytes) -> None:
    with answering(answer_head, b"<" * (2 << 20)) as (port, hung_up):
        assert early_to(port).take() is None
        assert hung_up.wait(10)


def test_nobody_listening_gives_no_answer_but_counts_the_attempt() -> None:
    counter = RequestCounter()
    assert early_to(free_port(), counter=counter).take() is None
    assert counter.count == 1


# -- what the collection does with it ----------------------------------------------------------


class FixedAuth:
    def credentials(self) -> tuple[str, Secret]:
        return "alice", Secret("pw")

    def refresh(self) -> bool:
        return False


PROBE_ANSWER = b"""<?xml version="1.0"?><multistatus xmlns="DAV:"
xmlns:CS="http://calendarserver.org/ns/"><response><href>/alice/contacts/</href><propstat>
<prop><CS:getctag>"2"</CS:getctag></prop><status>HTTP/1.1 200 OK</status></propstat>
</response></multistatus>"""


@contextmanager
def collection_with(early: EarlySync) -> Iterator[tuple[Collection, list[str]]]:
    sent: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(207, content=PROBE_ANSWER)

    with DavClient("http://127.0.0.1:9/", FixedAuth(),
                   transport=httpx.MockTransport(server)) as dav:
        remote = open_collection(dav, "http://127.0.0.1:9/alice/contacts/", "contacts")
        remote.present_early_sync(early)
        yield remote, sent


def test_the_collection_hands_it_out_once_and_only_for_its_token() -> None:
    with answering(head("207 Multi-Status", 0)) as (port, hung_up):
        early = early_to(port)
        with collection_with(early) as (remote, _):
            assert remote.take_early_sync(TOKEN + "-other") is None
            assert hung_up.wait(10)  # dropped: its connection closed
            assert remote.take_early_sync(TOKEN) is None
    with answering(head("207 Multi-Status", 0)) as (port, _):
        early = early_to(port)
        with collection_with(early) as (remote, _):
            assert remote.take_early_sync(TOKEN) is early
            assert remote.take_early_sync(TOKEN) is None
            early.close()


def test_a_probe_sent_after_it_drops_it() -> None:
    """A listing must follow the probe whose marks the run keeps (`Probe.wants_ctag_probe`):
    an early sync-collection sent before a later probe is never read."""
    with answering(head("207 Multi-Status", 0)) as (port, hung_up):
        early = early_to(port)
        with collection_with(early) as (remote, sent):
            probe = remote.probe()
            assert probe.ctag == '"2"' and sent == ["PROPFIND"]
            assert hung_up.wait(10)
            assert remote.take_early_sync(TOKEN) is None
