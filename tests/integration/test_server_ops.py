"""Operating the server: `init`, the systemd unit (systemd-analyze), and quiet, useful logs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from davsync.server.devissuer import DevIssuer
from davsync.server.unit import render_unit
from tests.fixtures.davsync_server import (
    DAVSYNC,
    DavsyncServer,
    new_subject,
    start_davsync_server,
    stop_davsync_server,
)
from tests.fixtures.ports import free_port, wait_listening
from tests.fixtures.systemd import exposure, verify

REPO = Path(__file__).resolve().parents[2]


def davsync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAVSYNC, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_init_then_app_password_then_serve(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "davsync" / "server.toml"
    port = free_port()
    made = davsync("--config", str(config), "server", "init", "--listen", f"127.0.0.1:{port}")
    assert made.returncode == 0, made.stderr
    data = tmp_path / "etc" / "davsync" / "data"
    assert (data / "collections").is_dir() and (data / "credentials.sqlite3").is_file()
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    again = davsync("--config", str(config), "server", "init")
    assert again.returncode == 0 and "kept the existing config" in again.stdout

    app = davsync("--config", str(config), "server", "app-password", "--create", "alice")
    assert app.returncode == 0, app.stderr
    password = re.search(r"password: (\S+)", app.stdout)
    assert password and "shown only this once" in app.stdout
    proc = subprocess.Popen([DAVSYNC, "--config", str(config), "server"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc=proc)
        response = httpx.request("PROPFIND", f"http://127.0.0.1:{port}/alice/",
                                 headers={"Depth": "0"}, auth=("alice", password[1]), timeout=30)
        assert response.status_code == 207
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_app_password_cli_explains_a_missing_account(davsync_server: DavsyncServer) -> None:
    result = davsync_server.cli("app-password", "nobody", check=False)
    assert result.returncode == 1
    assert "no account 'nobody' (see `davsync server accounts`); add --create" in result.stderr
    result = davsync_server.cli("app-password", "--create", "Not-Valid", check=False)
    assert result.returncode == 2 and "lower-case letters and digits" in result.stderr


def test_repository_unit_is_the_rendered_default() -> None:
    shipped = (REPO / "systemd" / "davsync-server.service").read_text(encoding="utf-8")
    assert shipped == render_unit()


def test_unit_verifies_and_rates_ok_or_better(tmp_path: Path) -> None:
    unit = tmp_path / "davsync-server.service"
    made = davsync("--config", str(tmp_path / "server.toml"), "server", "init", "--unit",
                   str(unit))
    assert made.returncode == 0, made.stderr
    assert f"ExecStart={DAVSYNC} --config {tmp_path / 'server.toml'} server" in unit.read_text()
    verify(unit)
    score, rating = exposure(unit)
    assert rating in ("SAFE", "OK"), (score, rating)


def test_unit_is_not_overwritten(tmp_path: Path) -> None:
    unit = tmp_path / "davsync-server.service"
    unit.write_text("# edited by the admin\n")
    made = davsync("--config", str(tmp_path / "server.toml"), "server", "init", "--unit",
                   str(unit))
    assert made.returncode == 1 and "already exists; not overwritten" in made.stderr
    assert unit.read_text() == "# edited by the admin\n"


@pytest.fixture
def quiet_server(tmp_path: Path, dev_issuer: DevIssuer) -> DavsyncServer:
    return start_davsync_server(tmp_path, dev_issuer, flags=())


def test_default_log_is_one_summary_line_and_each_event_once(
    quiet_server: DavsyncServer,
) -> None:
    server = quiet_server
    try:
        sub = new_subject()
        token = server.mint(sub)
        device = server.provision(sub)
        response = httpx.post(server.url + ".well-known/davsync/app-password",
                              json={"assertion": token, "label": "Pixel DAVx5"},
                              timeout=30)
        assert response.status_code == 200
        app = response.json()
        propfind = {"headers": {"Depth": "0"}, "timeout": 30}
        assert httpx.request("PROPFIND", server.url, auth=device.auth, **propfind
                             ).status_code == 207
        assert httpx.request("PROPFIND", server.url, auth=(device.username, "guess"),
                             **propfind).status_code == 401
        assert httpx.post(server.revoke_url, auth=device.auth, timeout=30).status_code == 200
    finally:
        stop_davsync_server(server)
    lines = server.log_text().splitlines()
    assert lines[0].startswith(f"davsync server: listening on {server.url} (storage ")
    assert "issuers: " + server.issuer.url in lines[0]
    assert "0 accounts, 0 devices, 0 app passwords)" in lines[0]
    assert not [line for line in lines if " INFO radicale" in line]
    assert sum(f"provisioned device 'device-1' (Test device) of {device.username}" in line
               for line in lines) == 1
    assert sum(f"created app password {app['id']} (Pixel DAVx5) of {device.username}" in line
               for line in lines) == 1
    assert sum(f"device 'device-1' of {device.username} revoked itself" in line
               for line in lines) == 1
    text = "\n".join(lines)
    for secret in (device.password, app["password"], token):
        assert secret not in text


def test_under_journald_the_server_logs_journal_lines_with_secrets_redacted(
    tmp_path: Path, dev_issuer: DevIssuer,
) -> None:
    """The server goes through the client's logging set-up (before, it replaced it with its
    own basicConfig): under systemd one `<priority>` line per event, and every record, even
    a debug access line, stripped of secrets."""
    log = tmp_path / "server.log"
    log.touch()
    st = log.stat()
    server = start_davsync_server(tmp_path, dev_issuer, flags=("-v",),
                                  extra_env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    try:
        httpx.get(server.url + "?password=hunter2-in-a-query", timeout=30)
    finally:
        stop_davsync_server(server)
    text = server.log_text()
    assert "hunter2-in-a-query" not in text
    assert re.search(r"^<7>.*password=\*{6}", text, re.M), text  # the access line, at debug
    assert re.search(r"^<6>davsync server stopped logger=davsync\.server\.serve$", text, re.M)
