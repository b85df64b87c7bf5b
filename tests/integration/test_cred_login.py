"""`davsync login` with the OAuth device grant, against a loopback device-authorization front
whose ID tokens are minted by the development issuer the davsync server trusts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from click.testing import CliRunner, Result

from davsync.app.credentials import authenticator_for, dav_url_for
from davsync.cli import main
from davsync.config import load_config
from davsync.credentials.provision import LoginRequired
from davsync.credentials.store import (
    FileSecretStore,
    load_device,
    load_id_token,
    save_id_token,
)
from davsync.dav.client import DavClient
from davsync.dav.discovery import find_collection
from davsync.errors import EXIT_UNREACHABLE
from davsync.secret import Secret
from tests.fixtures.davsync_server import DavsyncServer, new_subject


@dataclass
class DeviceFront:
    """RFC 8628 endpoints on loopback; approves after `pending` polls, as `subject`."""

    server: DavsyncServer
    subject: str = ""
    pending: int = 1
    deny: bool = False
    polls: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    @property
    def device_code(self) -> str:
        """Upper case and long: no UUID, URL or user name printed beside it can contain it by
        chance (a short "dc-" prefix was found in about one random device id of 60)."""
        return "DEVICE-CODE-SECRET-" + self.subject.upper()

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == "/.well-known/openid-configuration":
            return 200, {
                "issuer": self.url,
                "device_authorization_endpoint": self.url + "/device",
                "token_endpoint": self.url + "/token",
            }
        if path == "/device" and form.get("client_id") == self.server.client_id:
            return 200, {
                "device_code": self.device_code,
                "user_code": "ABCD-EFGH",
                "verification_uri": self.url + "/activate",
                "expires_in": 60,
                "interval": 0,
            }
        if path == "/token" and form.get("device_code") == self.device_code:
            self.polls.append(form)
            if self.deny:
                return 400, {"error": "access_denied"}
            if len(self.polls) <= self.pending:
                return 400, {"error": "authorization_pending"}
            return 200, {"id_token": self.server.mint(self.subject), "token_type": "Bearer"}
        return 400, {"error": "invalid_request"}


@pytest.fixture
def front(davsync_server: DavsyncServer) -> Iterator[DeviceFront]:
    state = DeviceFront(davsync_server, subject=new_subject())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply(*state.answer(self.path, {}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            self._reply(*state.answer(self.path, form))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def config(tmp_path: Path, front: DeviceFront, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAVSYNC_KEYRING", "0")
    path = tmp_path / "config.toml"
    path.write_text(
        f"""[server]
auth = "provision"
provision_url = "{front.server.provision_url}"
issuer = "{front.url}"
client_id = "{front.server.client_id}"

[state]
dir = "{tmp_path / "state"}"
""",
        encoding="utf-8",
    )
    return path


def _run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args])


def _store(config: Path) -> FileSecretStore:
    return FileSecretStore(config.parent / "state" / "credentials.json")


def test_login_with_device_grant(config: Path, front: DeviceFront) -> None:
    result = _run(config, "login")
    assert result.exit_code == 0, result.output
    assert "ABCD-EFGH" in result.output and front.url + "/activate" in result.output
    assert front.device_code not in result.output  # the device code is never shown
    assert "DEVICE-CODE-SECRET" not in result.output
    assert len(front.polls) == 2  # one authorization_pending, then the token
    creds = load_device(_store(config))
    assert creds is not None and creds.username in result.output
    token = load_id_token(_store(config))
    assert token is not None and token.reveal() not in result.output
    assert _run(config, "whoami").exit_code == 0


def test_denied_sign_in_exits_3(config: Path, front: DeviceFront) -> None:
    front.deny = True
    result = _run(config, "login")
    assert result.exit_code == EXIT_UNREACHABLE
    assert "denied" in result.output
    assert load_device(_store(config)) is None


def test_expired_login_asks_for_davsync_login(config: Path, front: DeviceFront) -> None:
    assert _run(config, "login").exit_code == 0
    creds = load_device(_store(config))
    assert creds is not None
    expired = front.server.mint(front.subject, ttl=-60)
    save_id_token(_store(config), Secret(expired), front.url)
    front.server.revoke(creds.username, creds.device_id)
    loaded = load_config(config)
    auth = authenticator_for(loaded)
    with DavClient(dav_url_for(loaded, auth), auth) as client, pytest.raises(LoginRequired):
        find_collection(client, "contacts", "contacts")
    status = json.loads((config.parent / "state" / "auth-status.json").read_text())
    assert "run `davsync login`" in status["reason"]
    shown = _run(config, "whoami")
    assert shown.exit_code == 1 and "davsync login" in shown.output
    assert _run(config, "login").exit_code == 0  # and logging in again heals it
    assert _run(config, "whoami").exit_code == 0
