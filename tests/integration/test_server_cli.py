"""`davsync server` as a user runs it: config errors, signals, the dev issuer commands."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from davsync.errors import EXIT_CONFIG
from davsync.server.assertions import AssertionVerifier
from davsync.server.devissuer import DevIssuer
from davsync.server.settings import IssuerConfig
from tests.fixtures.davsync_server import (
    DAVSYNC,
    DavsyncServer,
    new_subject,
    start_davsync_server,
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAVSYNC, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_config_error_names_the_key_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:1"\ndata_dir = "d"\nmax_device = 3\n')
    result = run("--config", str(config), "server")
    assert result.returncode == EXIT_CONFIG
    assert "max_device: unknown key (did you mean 'max_devices'?)" in result.stderr
    assert str(config) in result.stderr


def test_without_config_exits_2() -> None:
    result = run("server")
    assert result.returncode == EXIT_CONFIG
    assert "--config server.toml" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(
    tmp_path: Path, dev_issuer: DevIssuer, sig: signal.Signals
) -> None:
    server = start_davsync_server(tmp_path, dev_issuer)
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=10) == 0
    assert "davsync server stopped" in server.log_text()


def test_accounts_lists_issuer_and_subject(davsync_server: DavsyncServer) -> None:
    sub = new_subject()
    device = davsync_server.provision(sub)
    rows = json.loads(davsync_server.cli("accounts", "--json").stdout)
    mine = [r for r in rows if r["username"] == device.username]
    assert mine and mine[0]["sub"] == sub and mine[0]["iss"] == davsync_server.issuer.url
    assert mine[0]["active_devices"] == 1


def test_dev_issuer_and_dev_token_commands() -> None:
    proc = subprocess.Popen(
        [DAVSYNC, "server", "dev-issuer", "--print-token", "alice", "--audience", "demo"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        printed = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        verifier = AssertionVerifier([IssuerConfig(url, "demo")])
        assert verifier.verify(printed).sub == "alice"
        result = run("server", "dev-token", "--issuer", url, "--audience", "demo",
                     "--email", "bob@example.org", "bob")
        assert result.returncode == 0, result.stderr
        identity = verifier.verify(result.stdout.splitlines()[0])
        assert (identity.sub, identity.email, identity.email_verified) == (
            "bob", "bob@example.org", True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_dev_token_refuses_non_loopback_issuer() -> None:
    result = run("server", "dev-token", "--issuer", "http://192.0.2.1:9", "--audience", "a", "x")
    assert result.returncode == 1
    assert "loopback" in result.stderr
