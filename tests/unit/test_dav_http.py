"""The httpx pieces and the one client factory (`dav/http.py`), and the rule that the
credentials room and the DAV room do not import each other."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from davsync.dav.api import DavError, RequestCounter
from davsync.dav.client import DavClient
from davsync.dav.http import http_client
from davsync.secret import Secret

BASE = "http://127.0.0.1:9/alice/"


class RefreshingAuth:
    """A password that is refused once and replaced once."""

    def __init__(self) -> None:
        self.password = "first"

    def credentials(self) -> tuple[str, Secret]:
        return "alice", Secret(self.password)

    def refresh(self) -> bool:
        self.password = "second"
        return True


class Recorder(httpx.BaseTransport):
    """What a recording transport would be: it sees every exchange and passes it on."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.headers.get("authorization", "")))
        return self.inner.handle_request(request)


def test_a_transport_wrapper_sees_every_exchange_retries_and_auth_included() -> None:
    answers = iter([httpx.Response(401), httpx.Response(503, headers={"retry-after": "1"}),
                    httpx.Response(204)])
    recorders: list[Recorder] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        recorders.append(Recorder(inner))
        return recorders[-1]

    counter = RequestCounter()
    with DavClient(BASE, RefreshingAuth(), transport=httpx.MockTransport(lambda _: next(answers)),
                   sleep=lambda _: None, counter=counter, wrap_transport=wrap) as dav:
        assert dav.request("DELETE", BASE + "x.vcf").status_code == 204
    seen = [exchange for recorder in recorders for exchange in recorder.seen]
    assert [method for method, _ in seen] == ["DELETE"] * 3
    assert seen[0][1] != seen[1][1] == seen[2][1]  # refreshed credentials after the 401
    assert counter.count == 3


def test_the_factory_wraps_the_proxy_transports_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    wrapped: list[httpx.BaseTransport] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        wrapped.append(inner)
        return inner

    with http_client(verify=False, connect_timeout=1, read_timeout=1, wrap=wrap) as client:
        assert client is not None
    assert len(wrapped) == 2  # the direct transport and the proxy mount


def test_a_huge_401_answer_is_not_read_whole_before_the_refresh() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, content=b"x" * (2 << 20))

    with DavClient(BASE, RefreshingAuth(), transport=httpx.MockTransport(handler),
                   sleep=lambda _: None) as dav, pytest.raises(DavError, match="larger than"):
        dav.request("PROPFIND", BASE)


def _imported(code: str) -> list[str]:
    script = code + "\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    return out.split()


def test_credentials_and_dav_do_not_import_each_other() -> None:
    credentials = _imported("import davsync.credentials.authenticator, "
                            "davsync.credentials.provision, davsync.credentials.device_grant")
    assert [m for m in credentials if m.startswith("davsync.dav")] == []
    dav = _imported("import davsync.dav.client, davsync.dav.basic_auth, davsync.dav.http")
    assert [m for m in dav if m.startswith("davsync.credentials.")
            and m != "davsync.secret"] == []  # Secret: moving to a leaf (house)
    assert [m for m in dav + credentials if m.startswith("davsync.config")] == []
