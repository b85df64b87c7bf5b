"""One hostile item never blocks a sync (real Radicale): a vCard nested 2 000 levels deep, on the
device or coming from the server, is reported by name, the other items sync, and the run ends
with exit 1 instead of a RecursionError traceback.

Radicale refuses to store such a vCard itself (its own parser recurses: 400), so the server-side
case goes through a small loopback proxy in front of it that hands out the deep version of one
item Radicale stores in a harmless form.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from davsync.core.vtext import MAX_DEPTH
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import Device, server_items

DEPTH = 2000
MARKER = "NOTE:made-deep-by-the-proxy"


def card(uid: str, extra: str = "") -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{uid}\r\n{extra}END:VCARD\r\n"
            .encode())


DEEP = "BEGIN:X\r\n" * DEPTH + "END:X\r\n" * DEPTH


def test_deep_device_file_is_reported_by_name_and_the_others_sync(tmp_path: Path,
                                                                   dav_account: DavAccount
                                                                   ) -> None:
    device = Device(tmp_path / "device", dav_account)
    for uid in ("good-1", "good-2"):
        (device.contacts / f"{uid}.vcf").write_bytes(card(uid))
    deep = device.contacts / "deep.vcf"
    deep.write_bytes(card("deep", DEEP))

    for _ in range(2):                                 # reported again, never blocking
        got = device.sync()
        assert got["exit"] == 1, got
        errors = got["collections"]["contacts"]["errors"]
        assert [e["item"] for e in errors] == [str(deep)]
        assert f"nested more than {MAX_DEPTH} deep" in errors[0]["reason"]
        assert set(server_items(dav_account, "contacts")) == {"good-1", "good-2"}
    assert deep.read_bytes() == card("deep", DEEP)  # left untouched
    proc = device.run("sync")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert (f"{deep}: cannot parse, left untouched: components nested more than {MAX_DEPTH} "
            "deep (line 20: 'BEGIN:X')") in proc.stderr


class DeepeningProxy(BaseHTTPRequestHandler):
    """Forwards every request to Radicale and, in the answers, turns MARKER into DEEP."""

    upstream = ""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        with httpx.Client() as client:
            resp = client.request(self.command, self.upstream + self.path, content=body,
                                  headers=headers)
        data = resp.content.replace(MARKER.encode(), DEEP.replace("\r\n", "\n").encode())
        self.send_response(resp.status_code)
        for key, value in resp.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                   "content-encoding", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_MKCOL = do_OPTIONS = _forward
    do_PROPPATCH = do_HEAD = do_POST = do_MKCALENDAR = _forward

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is the sync's."""


@pytest.fixture
def proxy(dav_account: DavAccount) -> Iterator[str]:
    handler = type("Handler", (DeepeningProxy,), {"upstream": dav_account.url.rstrip("/")})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_deep_item_from_the_server_is_reported_by_href_and_the_others_sync(
        tmp_path: Path, dav_account: DavAccount, proxy: str) -> None:
    seed = Device(tmp_path / "seed", dav_account)
    (seed.contacts / "seed.vcf").write_bytes(card("seed"))
    assert seed.sync()["exit"] == 0                   # creates the collection
    auth = (dav_account.username, dav_account.password)
    base = f"{dav_account.url}{dav_account.username}/contacts/"
    for name, body in (("good.vcf", card("good")), ("deep.vcf", card("deep", MARKER + "\r\n"))):
        put = httpx.put(base + name, content=body, auth=auth,
                        headers={"Content-Type": "text/vcard"})
        assert put.status_code == 201

    via_proxy = SimpleNamespace(url=proxy, username=dav_account.username,
                                password=dav_account.password)
    device = Device(tmp_path / "device", via_proxy)  # type: ignore[arg-type]
    for _ in range(2):                                 # looked at (and reported) again
        got = device.sync()
        assert got["exit"] == 1, got
        errors = got["collections"]["contacts"]["errors"]
        assert [e["item"] for e in errors] == [f"/{dav_account.username}/contacts/deep.vcf"]
        assert "cannot parse server copy" in errors[0]["reason"]
        assert f"nested more than {MAX_DEPTH} deep" in errors[0]["reason"]
        assert set(device.uids()) == {"seed", "good"}
    assert MARKER in httpx.get(base + "deep.vcf", auth=auth).text  # left untouched
