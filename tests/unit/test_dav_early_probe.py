"""The early probe (stdlib, sent before httpx is imported) and what the run makes of its answer.

The sockets here are hostile peers (one that never answers, one that is not listening), not
stand-ins for a DAV server; the real-server paths are in tests/integration/test_sync_early_probe.py.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from davsync.cli import _exit_status
from davsync.dav.api import RequestCounter, basic_authorization
from davsync.dav.client import DavClient
from davsync.dav.discovery import open_collection
from davsync.dav.earlyprobe import EarlyProbe, EarlyRoute, proxy_configured
from davsync.dav.tls import tls_context
from davsync.dav.xmlbodies import PROBE_PROPS, propfind
from davsync.secret import Secret
from tests.fixtures.ports import free_port

COLLECTION = "http://127.0.0.1:9/alice/contacts/"
CTAG_ANSWER = b"""<?xml version="1.0" encoding="utf-8"?>
<multistatus xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><response>
<href>/alice/contacts/</href><propstat><prop><CS:getctag>"abc"</CS:getctag>
<supported-report-set><supported-report><report><sync-collection/></report></supported-report>
</supported-report-set></prop><status>HTTP/1.1 200 OK</status></propstat></response>
</multistatus>"""
NO_CTAG_ANSWER = CTAG_ANSWER.replace(b'<CS:getctag>"abc"</CS:getctag>', b"")


class FixedAuth:
    def credentials(self) -> tuple[str, Secret]:
        return "alice", Secret("pa:ss word")

    def refresh(self) -> bool:
        return False


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.method} {request.url}")


@pytest.fixture
def client() -> Iterator[tuple[DavClient, RequestCounter]]:
    counter = RequestCounter()
    with DavClient(COLLECTION, FixedAuth(), counter=counter,
                   transport=httpx.MockTransport(no_network)) as dav:
        yield dav, counter


def test_a_207_with_a_ctag_is_the_probe_and_teaches_the_reports(
    client: tuple[DavClient, RequestCounter],
) -> None:
    dav, counter = client
    remote = open_collection(dav, COLLECTION, "contacts")
    probe = remote.read_probe(207, CTAG_ANSWER)
    assert probe is not None and probe.ctag == '"abc"'
    assert remote.supports_sync_collection()  # learned from the same answer
    assert counter.count == 0


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (401, b"Unauthorized"),
        (404, b""),
        (301, b""),
        (207, b"<not xml"),
        (207, b"<!DOCTYPE x [<!ENTITY a 'b'>]><multistatus xmlns='DAV:'/>"),
        (207, NO_CTAG_ANSWER),
    ],
)
def test_anything_else_is_not_used_so_the_run_probes_again(
    client: tuple[DavClient, RequestCounter], status: int, content: bytes
) -> None:
    remote = open_collection(client[0], COLLECTION, "contacts")
    assert remote.read_probe(status, content) is None


def test_the_authorization_header_is_basic_of_the_current_credentials() -> None:
    import base64

    header = basic_authorization(FixedAuth())
    assert header.startswith("Basic ")
    assert base64.b64decode(header.split(" ", 1)[1]) == b"alice:pa:ss word"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"HTTP_PROXY": "http://proxy:3128"}, True),
        ({"https_proxy": "http://proxy:3128"}, True),
        ({"ALL_PROXY": "socks5://proxy:1080"}, True),
        ({"HTTP_PROXY": ""}, False),
        ({"NO_PROXY": "*"}, False),
    ],
)
def test_a_proxy_in_the_environment_turns_the_early_probe_off(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxy_configured() is expected


@contextmanager
def listening() -> Iterator[socket.socket]:
    """A peer that accepts connections and answers nothing unless the test makes it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener


def probe_to(port: int, *, read_timeout: float = 5, counter: RequestCounter | None = None,
             body: bytes = b"<x/>") -> EarlyProbe:
    return EarlyProbe(f"http://127.0.0.1:{port}/a/", body,
                      EarlyRoute("Basic eA==", None, 2, read_timeout,
                                 counter or RequestCounter()))


def test_nobody_listening_gives_no_answer_but_counts_the_attempt() -> None:
    counter = RequestCounter()
    early = probe_to(free_port(), read_timeout=2, counter=counter)
    assert early.answer() is None
    assert counter.count == 1


def test_a_server_that_never_answers_gives_up_after_the_read_timeout() -> None:
    with listening() as listener:
        early = probe_to(listener.getsockname()[1], read_timeout=0.3,
                         body=propfind(PROBE_PROPS))
        started = time.monotonic()
        assert early.answer() is None
        assert time.monotonic() - started < 5
        assert early.answer() is None  # read once; later calls do not block


def test_arrived_says_without_waiting_whether_the_answer_is_there() -> None:
    with listening() as listener:
        early = probe_to(listener.getsockname()[1])
        peer, _ = listener.accept()
        with peer:
            started = time.monotonic()
            assert not early.arrived()  # asked and not yet answered
            assert time.monotonic() - started < 0.5
            peer.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 0\r\n\r\n")
            deadline = time.monotonic() + 5
            while not early.arrived() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert early.arrived()
            answer = early.answer()
            assert answer is not None and answer.status == 207
            assert early.arrived()  # read: answer() returns at once


def test_a_probe_never_sent_has_arrived() -> None:
    early = probe_to(free_port(), read_timeout=2)
    assert early.arrived()  # nothing to wait for
    assert early.answer() is None


def test_close_before_reading_drops_the_connection() -> None:
    with listening() as listener:
        early = probe_to(listener.getsockname()[1])
        early.close()
        assert early.answer() is None


def test_tls_trust_follows_httpx_default_and_verify_false(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import certifi

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    strict = tls_context(True)
    assert strict.verify_mode is ssl.CERT_REQUIRED and strict.check_hostname
    assert strict.cert_store_stats()["x509_ca"] > 0  # certifi's bundle is loaded
    loose = tls_context(False)
    assert loose.verify_mode is ssl.CERT_NONE and not loose.check_hostname
    monkeypatch.setenv("SSL_CERT_FILE", str(certifi.where()) + ".missing")
    with pytest.raises(OSError):  # the variable is honoured, not silently ignored
        tls_context(True)


@pytest.mark.parametrize(
    ("code", "status", "printed"),
    [(None, 0, ""), (0, 0, ""), (3, 3, ""), ("bad things", 1, "bad things\n")],
)
def test_the_fast_exit_keeps_what_the_interpreter_would_make_of_systemexit(
    capsys: pytest.CaptureFixture[str], code: str | int | None, status: int, printed: str
) -> None:
    assert _exit_status(code) == status
    assert capsys.readouterr().err == printed


def test_importing_httpx_does_not_import_its_command_line_client() -> None:
    """httpx imports its CLI (rich, pygments: 40 ms) whenever those are installed, as they
    are in the test environment; davsync stops that import (`davsync/__init__.py`)."""
    code = ("import sys, davsync, httpx; "
            "print([m for m in ('rich', 'pygments', 'httpx._main') if sys.modules.get(m)])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
    assert callable(httpx.main)  # httpx's own stand-in for a CLI it could not import


def test_discovery_keeps_what_it_saw_as_the_first_probe() -> None:
    """load() asks for the probe's properties (never the sync-token: a second walk of every
    item on Radicale) and keeps the answer, so a first run against an existing collection
    needs no separate probe."""
    bodies: list[bytes] = []

    def server(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        answer = CTAG_ANSWER.replace(
            b"<propstat>", b"<propstat><prop><resourcetype><collection/>"
            b"<addressbook xmlns='urn:ietf:params:xml:ns:carddav'/></resourcetype></prop>"
            b"<status>HTTP/1.1 200 OK</status></propstat><propstat>", 1)
        return httpx.Response(207, content=answer)

    counter = RequestCounter()
    with DavClient(COLLECTION, FixedAuth(), counter=counter,
                   transport=httpx.MockTransport(server)) as dav:
        remote = open_collection(dav, COLLECTION, "contacts")
        remote.load()
    assert remote.exists and counter.count == 1
    assert remote.loaded_probe is not None and remote.loaded_probe.ctag == '"abc"'
    assert b"getctag" in bodies[0] and b"sync-token" not in bodies[0]


def test_an_oversized_answer_is_not_read_into_memory_or_used() -> None:
    """A hostile or broken server streaming megabytes at a Depth 0 PROPFIND."""
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def flood() -> None:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while not request.endswith(b"<x/>"):  # the whole request, body included
                    request += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 2097152\r\n\r\n")
                try:
                    for _ in range(32):  # a complete, well-formed 2 MiB answer
                        conn.sendall(b"<" * 65536)
                    while conn.recv(65536):  # until the client hangs up
                        pass
                except OSError:
                    pass  # the client stopped reading, as it should

        server = threading.Thread(target=flood, daemon=True)
        server.start()
        early = probe_to(port)
        assert early.answer() is None
        server.join(timeout=10)


def test_a_server_that_does_not_accept_holds_the_run_up_at_most_briefly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dropped SYNs (a full accept queue here, a firewall in life): the early probe gives up
    after MAX_CONNECT_SECONDS, not after the configured connect timeout, and the run goes on
    to the main client, which owns patience and retries."""
    import davsync.dav.earlyprobe as earlyprobe

    monkeypatch.setattr(earlyprobe, "MAX_CONNECT_SECONDS", 0.3)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the accept queue
            counter = RequestCounter()
            started = time.monotonic()
            early = EarlyProbe(f"http://127.0.0.1:{port}/a/", b"<x/>",
                               EarlyRoute("Basic eA==", None, 60, 60, counter))
            assert early.answer() is None
            assert time.monotonic() - started < 30  # 0.3 s cap, far from the 60 s timeout
            assert counter.count == 1
