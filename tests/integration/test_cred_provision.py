"""Provisioning end to end: `davsync login/whoami/logout` and the authenticator against a real
davsync server (Radicale + provisioning endpoint) and the development OpenID issuer."""

from __future__ import annotations

import json
import logging
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from davsync.app.credentials import authenticator_for, dav_url_for
from davsync.cli import main
from davsync.config import load_config
from davsync.credentials.authenticator import REPROVISION_FAILED, StatusFile
from davsync.credentials.provision import LoginRequired
from davsync.credentials.store import FileSecretStore, load_device, save_device
from davsync.dav.client import DavClient
from davsync.dav.discovery import find_collection
from davsync.errors import EXIT_UNREACHABLE, AuthError
from tests.fixtures.davsync_server import DavsyncServer, new_subject
from tests.fixtures.ports import free_port


@dataclass
class Installation:
    """One client installation: its config file, state dir and assertion helper."""

    root: Path
    config: Path
    state: Path
    token_log: Path  # every token the assertion command printed, one a line
    calls: Path  # one line per run of the assertion command

    @property
    def store(self) -> FileSecretStore:
        return FileSecretStore(self.state / "credentials.json")

    def status(self) -> dict[str, object]:
        return json.loads((self.state / "auth-status.json").read_text(encoding="utf-8"))

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.config), *args])

    def provisions(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0

    def use_working_command(self) -> None:
        text = self.config.read_text(encoding="utf-8")
        self.config.write_text(text.replace(' --fail"', '"'), encoding="utf-8")

    def use_failing_command(self) -> None:
        text = self.config.read_text(encoding="utf-8")
        helper = self.root / "assert.py"
        text = text.replace(f'"{sys.executable} {helper}"', f'"{sys.executable} {helper} --fail"')
        self.config.write_text(text, encoding="utf-8")


# Stdlib only: the command runs once per provisioning and must start fast.
HELPER = """\
import json, sys, urllib.request
from pathlib import Path
Path({calls!r}).open("a").write("run\\n")
if "--fail" in sys.argv:
    print("issuer says no", file=sys.stderr)
    raise SystemExit(1)
body = json.dumps({{"sub": {subject!r}, "aud": {client_id!r}}}).encode()
headers = {{"Content-Type": "application/json"}}
request = urllib.request.Request({issuer!r} + "/token", body, headers)
token = json.load(urllib.request.urlopen(request, timeout=10))["id_token"]
Path({token_log!r}).open("a").write(token + "\\n")
print(token)
"""


@pytest.fixture
def install(
    tmp_path: Path,
    davsync_server: DavsyncServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Installation:
    monkeypatch.setenv("DAVSYNC_KEYRING", "0")
    subject = new_subject()
    inst = Installation(
        tmp_path,
        tmp_path / "config.toml",
        tmp_path / "state",
        tmp_path / "tokens",
        tmp_path / "calls",
    )
    helper = tmp_path / "assert.py"
    helper.write_text(
        HELPER.format(
            calls=str(inst.calls),
            issuer=davsync_server.issuer.url,
            subject=subject,
            client_id=davsync_server.client_id,
            token_log=str(inst.token_log),
        ),
        encoding="utf-8",
    )
    inst.config.write_text(
        f"""[server]
auth = "provision"
provision_url = "{davsync_server.provision_url}"
assertion_command = "{sys.executable} {helper}"
device_name = "test laptop"

[state]
dir = "{inst.state}"
""",
        encoding="utf-8",
    )
    return inst


def _login(inst: Installation) -> None:
    result = inst.run("login")
    assert result.exit_code == 0, result.output


def _propfind(url: str, username: str, password: str) -> int:
    response = httpx.request(
        "PROPFIND", url, auth=(username, password), headers={"Depth": "0"}, timeout=10
    )
    return response.status_code


def test_login_with_assertion_command(install: Installation) -> None:
    result = install.run("login")
    assert result.exit_code == 0, result.output
    creds = load_device(install.store)
    assert creds is not None
    assert creds.username in result.output and creds.device_id in result.output
    assert "test laptop" in result.output and creds.dav_url in result.output
    assert creds.password.reveal() not in result.output
    assert stat.S_IMODE((install.state / "credentials.json").stat().st_mode) == 0o600
    assert _propfind(creds.dav_url, creds.username, creds.password.reveal()) == 207
    assert install.status()["state"] == "signed_in"


def test_whoami_json(install: Installation) -> None:
    before = install.run("whoami", "--json")
    assert before.exit_code == 1
    assert json.loads(before.output) == {
        "signed_in": False,
        "username": None,
        "device_id": None,
        "server": None,
    }
    _login(install)
    creds = load_device(install.store)
    assert creds is not None
    after = install.run("whoami", "--json")
    assert after.exit_code == 0
    assert json.loads(after.output) == {
        "signed_in": True,
        "username": creds.username,
        "device_id": creds.device_id,
        "server": creds.dav_url,
    }


def test_logout_revokes_on_the_server(install: Installation) -> None:
    _login(install)
    creds = load_device(install.store)
    assert creds is not None
    result = install.run("logout")
    assert result.exit_code == 0, result.output
    assert "Revoked" in result.output
    assert load_device(install.store) is None
    assert _propfind(creds.dav_url, creds.username, creds.password.reveal()) == 401
    assert install.run("whoami").exit_code == 1
    with pytest.raises(LoginRequired, match="davsync logout"):
        authenticator_for(load_config(install.config)).credentials()
    assert install.provisions() == 1  # a signed-out device does not provision on its own


def test_logout_with_server_unreachable_still_deletes_locally(install: Installation) -> None:
    _login(install)
    creds = load_device(install.store)
    assert creds is not None
    dead = f"http://127.0.0.1:{free_port()}/.well-known/davsync/provision"
    save_device(
        install.store,
        type(creds)(creds.username, creds.password, creds.dav_url, creds.device_id, dead),
    )
    result = install.run("logout")
    assert result.exit_code == EXIT_UNREACHABLE
    assert "local credentials deleted" in result.output and "server revoke" in result.output
    assert load_device(install.store) is None


def test_login_with_refusing_issuer_exits_3_and_records_why(install: Installation) -> None:
    install.use_failing_command()
    result = install.run("login")
    assert result.exit_code == EXIT_UNREACHABLE
    assert "assertion_command" in result.output and "status 1" in result.output
    status = install.status()
    assert status["state"] == REPROVISION_FAILED
    assert "status 1" in str(status["reason"])
    assert status["next_attempt_after"]
    assert load_device(install.store) is None
    shown = install.run("whoami")
    assert shown.exit_code == 1 and "Provisioning failed" in shown.output


def test_server_revoke_triggers_exactly_one_reprovision(
    install: Installation, davsync_server: DavsyncServer
) -> None:
    _login(install)
    old = load_device(install.store)
    assert old is not None
    davsync_server.revoke(old.username, old.device_id)
    assert install.provisions() == 1
    config = load_config(install.config)
    auth = authenticator_for(config)
    with DavClient(dav_url_for(config, auth), auth) as client:
        collection = find_collection(client, "contacts", "contacts")
        collection.ensure_exists()
    assert install.provisions() == 2
    new = load_device(install.store)
    assert new is not None and new.password != old.password
    assert (new.username, new.device_id) == (old.username, old.device_id)
    assert _propfind(new.dav_url, new.username, new.password.reveal()) == 207
    assert auth.refresh() is False  # a second refresh in the same run never provisions


def test_reprovision_refused_exits_3_and_status_says_why(
    install: Installation, davsync_server: DavsyncServer
) -> None:
    _login(install)
    old = load_device(install.store)
    assert old is not None
    davsync_server.revoke(old.username, old.device_id)
    install.use_failing_command()
    config = load_config(install.config)
    auth = authenticator_for(config)
    with DavClient(dav_url_for(config, auth), auth) as client, pytest.raises(AuthError) as info:
        find_collection(client, "contacts", "contacts")
    assert info.value.exit_code == EXIT_UNREACHABLE
    assert install.provisions() == 2  # the login, then exactly one failed attempt
    status = StatusFile(install.state / "auth-status.json").load()
    assert status is not None and status.state == REPROVISION_FAILED
    assert status.reason is not None and "assertion_command" in status.reason
    whoami = install.run("whoami", "--json")
    assert whoami.exit_code == 1


def test_no_secret_appears_in_logs_or_output(
    install: Installation,
    davsync_server: DavsyncServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = [install.run("-vv", "login").output, install.run("-vv", "whoami").output]
    first = load_device(install.store)
    assert first is not None
    davsync_server.revoke(first.username, first.device_id)
    config = load_config(install.config)
    auth = authenticator_for(config)
    with DavClient(dav_url_for(config, auth), auth) as client:
        find_collection(client, "contacts", "contacts").ensure_exists()
    second = load_device(install.store)
    assert second is not None
    outputs += [install.run("-vv", "whoami", "--json").output, install.run("-vv", "logout").output]
    captured = capsys.readouterr()
    tokens = install.token_log.read_text().split()
    secrets = [first.password.reveal(), second.password.reveal(), *tokens]
    assert len(tokens) == 2
    assert caplog.records  # the run did log: the check below is not vacuous
    everything = "\n".join([caplog.text, captured.out, captured.err, *outputs])
    server_log = davsync_server.log_text()
    for secret in secrets:
        assert secret not in everything
        assert secret not in server_log
