"""Sync over https against a real Radicale with a self-signed certificate: the trust rule
(certifi by default, SSL_CERT_FILE, verify_tls = false) holds for the early probe and for the
httpx client alike, and an untrusted certificate is a clear, immediate exit 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from davsync.devtools.radicale_local import LocalRadicale, start_radicale
from tests.fixtures.radicale import DavAccount
from tests.fixtures.tls import SelfSigned
from tests.integration.test_sync_radicale import ROOT, Device, copy_samples

PASSWORD = "tls-user-Secret-7"


@pytest.fixture(scope="module")
def tls_radicale(tmp_path_factory: pytest.TempPathFactory, self_signed: SelfSigned
                 ) -> Iterator[LocalRadicale]:
    server = start_radicale(tmp_path_factory.mktemp("radicale-tls"),
                            tls=(self_signed.certificate, self_signed.key))
    try:
        yield server
    finally:
        server.stop()


def device_for(tmp_path: Path, server: LocalRadicale, user: str, **extra: str) -> Device:
    server.add_user(user, PASSWORD)
    device = Device(tmp_path / user, DavAccount(server, user, PASSWORD), **extra)
    copy_samples(device)
    return device


def run(device: Device, *args: str, trust: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    if trust is not None:
        env["SSL_CERT_FILE"] = str(trust)
    return subprocess.run(
        [sys.executable, "-m", "davsync.cli", "--config", str(device.config), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )


def test_a_trusted_certificate_syncs_and_the_no_op_uses_the_early_probes(
    tmp_path: Path, tls_radicale: LocalRadicale, self_signed: SelfSigned
) -> None:
    assert tls_radicale.url.startswith("https://")
    device = device_for(tmp_path, tls_radicale, "trusting")
    first = run(device, "sync", "--json", trust=self_signed.certificate)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["collections"]["contacts"]["uploaded"] > 0
    again = run(device, "-vv", "sync", "--json", trust=self_signed.certificate)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["http_requests"] == 2
    assert again.stderr.count("early probe: PROPFIND https://") == 2


def test_verify_tls_false_accepts_the_self_signed_certificate(
    tmp_path: Path, tls_radicale: LocalRadicale
) -> None:
    device = device_for(tmp_path, tls_radicale, "careless", verify_tls="false")
    device.config.write_text(device.config.read_text(encoding="utf-8").replace(
        'verify_tls = "false"', "verify_tls = false"), encoding="utf-8")
    assert run(device, "sync").returncode == 0
    again = run(device, "-vv", "sync", "--json")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("early probe: PROPFIND https://") == 2


@pytest.mark.parametrize("known", [False, True], ids=["first-run", "after-a-good-run"])
def test_an_untrusted_certificate_exits_3_at_once_and_says_why(
    tmp_path: Path, tls_radicale: LocalRadicale, self_signed: SelfSigned, known: bool
) -> None:
    device = device_for(tmp_path, tls_radicale, f"wary-{known}")
    if known:  # the collection URLs are in the state: the early probes go out first
        assert run(device, "sync", trust=self_signed.certificate).returncode == 0
    proc = run(device, "sync", "--json")
    assert proc.returncode == 3, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert "TLS failed: certificate not trusted" in error and "SSL_CERT_FILE" in error
    assert "attempt" not in error  # a certificate does not fix itself: no retries
    assert PASSWORD not in proc.stdout + proc.stderr
