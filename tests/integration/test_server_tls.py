"""`davsync server` terminating TLS itself (a test certificate), and refusing plain HTTP off
loopback."""

from __future__ import annotations

import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import caldav
import httpx
import pytest

from davsync.errors import EXIT_CONFIG
from davsync.server.devissuer import DevIssuer
from tests.fixtures.davsync_server import (
    DAVSYNC,
    DavsyncServer,
    new_subject,
    start_davsync_server,
    stop_davsync_server,
    write_server_config,
)
from tests.fixtures.ports import free_port
from tests.fixtures.tls import SelfSigned, make_self_signed


@pytest.fixture
def tls_server(tmp_path: Path, dev_issuer: DevIssuer) -> Iterator[DavsyncServer]:
    certificate = make_self_signed(tmp_path / "tls")
    server = start_davsync_server(tmp_path / "server", dev_issuer, tls=certificate)
    try:
        yield server
    finally:
        stop_davsync_server(server)


def test_provisioning_dav_and_app_passwords_over_https(tls_server: DavsyncServer) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    device = tls_server.provision(new_subject())
    assert device.dav_url == tls_server.url  # the answer names the https URL
    response = httpx.request("PROPFIND", tls_server.url, headers={"Depth": "0"},
                             auth=device.auth, verify=tls_server.verify, timeout=30)
    assert response.status_code == 207
    app = tls_server.app_password(device.username, "Thunderbird")
    assert app.dav_url == tls_server.url
    with caldav.DAVClient(url=tls_server.url, username=app.username, password=app.password,
                          ssl_verify_cert=str(tls_server.ca)) as client:
        client.principal().make_calendar(name="Work", cal_id="work")
        assert [c.url.path for c in client.principal().calendars()] == [
            f"/{app.username}/work/"]


def test_plain_http_and_untrusted_clients_are_refused(tls_server: DavsyncServer) -> None:
    plain = tls_server.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(plain, timeout=30)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.url, timeout=30)
    assert httpx.get(tls_server.url, verify=tls_server.verify, timeout=30).status_code in (
        401, 404, 302, 303)  # still serving after both


def test_sighup_reloads_a_renewed_certificate(tls_server: DavsyncServer, tmp_path: Path
                                              ) -> None:
    assert tls_server.ca is not None
    renewed = make_self_signed(tmp_path / "renewed")
    tls_server.ca.write_bytes(renewed.certificate.read_bytes())  # the configured files
    (tls_server.ca.parent / "key.pem").write_bytes(renewed.key.read_bytes())
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_for_line(tls_server, "reloaded the TLS certificate")
    trusted = ssl.create_default_context(cafile=str(renewed.certificate))
    assert httpx.get(tls_server.url, verify=trusted, timeout=30).status_code < 500


def wait_for_line(server: DavsyncServer, text: str) -> None:
    """Block until the server logged `text` (the reload happens in its signal handler)."""
    for _ in range(600):
        if text in server.log_text():
            return
        try:
            server.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"server exited; log:\n{server.log_text()}")
    raise AssertionError(f"{text!r} never logged:\n{server.log_text()}")


def run_server(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAVSYNC, "--config", str(config), "server"], capture_output=True,
                          text=True, timeout=60, check=False)


def test_plain_http_off_loopback_is_refused_at_start(tmp_path: Path, dev_issuer: DevIssuer
                                                     ) -> None:
    config = write_server_config(tmp_path, free_port(), dev_issuer.url, "c",
                                 listen="0.0.0.0:5232")
    result = run_server(config)
    assert result.returncode == EXIT_CONFIG
    assert ("[server] listen: plain HTTP on '0.0.0.0' (not a loopback address) would send "
            "passwords in clear; set tls_certificate and tls_key, or behind_proxy = true if a "
            "TLS reverse proxy forwards to this address") in result.stderr


def test_unreadable_certificate_is_a_config_error(tmp_path: Path, dev_issuer: DevIssuer,
                                                  self_signed: SelfSigned) -> None:
    config = write_server_config(tmp_path, free_port(), dev_issuer.url, "c",
                                 tls_certificate=str(tmp_path / "missing.pem"),
                                 tls_key=str(self_signed.key))
    result = run_server(config)
    assert result.returncode == EXIT_CONFIG
    assert "tls_certificate/tls_key: cannot load" in result.stderr
    assert "missing.pem" in result.stderr and "Traceback" not in result.stderr
