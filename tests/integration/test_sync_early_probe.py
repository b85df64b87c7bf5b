"""The early probe, and the early sync-collection sent when it shows a change, against a real
Radicale: used when they can be, and every way they cannot be (a proxy in the environment,
refused credentials, a server gone, an answer only the client can judge) ends exactly as a run
without them would."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from davsync.devtools.radicale_local import start_radicale
from tests.fixtures.ports import free_port
from tests.fixtures.proxy import LoopbackProxy, Reply, Request, Upstream
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device, copy_samples
from tests.integration.test_sync_safety import proxied

EARLY = "early probe: PROPFIND"


def synced_device(root: Path, account: DavAccount) -> Device:
    """A device holding the samples, synced once: the state knows its collection URLs."""
    device = Device(root, account)
    copy_samples(device)
    assert device.sync()["exit"] == 0
    return device


def run(device: Device, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "davsync.cli", "--config", str(device.config), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )


def test_a_no_op_run_reads_both_collections_from_the_early_probes(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = synced_device(tmp_path / "d", dav_account)
    proc = run(device, "-vv", "sync", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["http_requests"] == 2
    assert proc.stderr.count(EARLY) == 2  # both sent early, neither probed again
    assert "httpx" not in proc.stderr  # no request went through the httpx client
    assert dav_account.password not in proc.stderr + proc.stdout


def test_a_change_seen_by_the_early_probe_is_synced(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    copy_samples(laptop)
    assert laptop.sync()["exit"] == 0
    assert phone.sync()["exit"] == 0
    victim = sorted(laptop.contacts.glob("*.vcf"))[0]
    victim.write_text(victim.read_text(encoding="utf-8").replace(
        "END:VCARD", "NOTE:edited on the laptop\r\nEND:VCARD"), encoding="utf-8")
    assert laptop.sync()["collections"]["contacts"]["updated"] == 1
    got = phone.sync()
    assert got["collections"]["contacts"]["downloaded"] == 1
    assert phone.uids() == laptop.uids()


def test_with_a_proxy_in_the_environment_every_request_goes_through_httpx(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = synced_device(tmp_path / "d", dav_account)
    # The proxy is never used (NO_PROXY covers the server): httpx goes direct, and the early
    # probe, which does not read proxy settings, must stay out of the way.
    env = {**os.environ, "HTTP_PROXY": f"http://127.0.0.1:{free_port()}",
           "NO_PROXY": "127.0.0.1,localhost"}
    proc = run(device, "-vv", "sync", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert EARLY not in proc.stderr
    assert json.loads(proc.stdout)["http_requests"] == 2


def test_refused_credentials_after_a_good_run_exit_3_without_the_password(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = synced_device(tmp_path / "d", dav_account)
    wrong = "wrong-password-early-42"
    device.config.write_text(device.config.read_text(encoding="utf-8").replace(
        dav_account.password, wrong), encoding="utf-8")
    proc = run(device, "-vv", "sync", "--json")
    assert proc.returncode == 3, proc.stderr
    assert "401" in json.loads(proc.stdout)["error"]
    encoded = base64.b64encode(f"{dav_account.username}:{wrong}".encode()).decode()
    assert wrong not in proc.stdout + proc.stderr
    assert encoded not in proc.stderr


def test_a_server_gone_after_a_good_run_exits_3(tmp_path: Path) -> None:
    server = start_radicale(tmp_path / "radicale")
    try:
        server.add_user("alice", "alice-Secret-1")
        device = synced_device(tmp_path / "d", DavAccount(server, "alice", "alice-Secret-1"))
    finally:
        server.stop()
    text = device.config.read_text(encoding="utf-8").replace("[device]",
                                                             "max_retries = 0\n[device]")
    device.config.write_text(text, encoding="utf-8")
    proc = run(device, "sync")
    assert proc.returncode == 3
    assert "reach" in proc.stderr.lower()


def test_a_no_op_run_imports_the_engine_only_while_a_probe_is_out(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """While the probes are out the run imports what it would need to go on; once their
    answers are read, a no-op imports nothing more (no httpx, no engine, no parser): import
    times go to stderr as each import ends, in order with the log lines."""
    device = synced_device(tmp_path / "d", dav_account)
    proc = run(device, "-vv", "sync", "--json",
               env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["http_requests"] == 2
    lines = proc.stderr.splitlines()
    first_answer = next(i for i, line in enumerate(lines) if EARLY in line)
    imported_after = {line.rsplit("|", 1)[-1].strip() for line in lines[first_answer:]
                      if line.startswith("import time:")}
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines
                if line.startswith("import time:")}
    assert "davsync.dav.earlyprobe" in imported  # the measurement itself works
    assert not imported_after & {"httpx", "httpcore", "davsync.sync.collection",
                                 "davsync.sync.run", "davsync.sync.execute",
                                 "davsync.dav.client", "davsync.core.item"}
    status = run(device, "status", "--json")
    assert all(c["last_sync"] for c in json.loads(status.stdout)["sync"].values())


def test_an_unreadable_device_file_is_reported_on_every_run(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    (device.contacts / "broken.vcf").write_bytes(b"BEGIN:VCARD\r\nthis is not a vCard\r\n")
    for _ in range(2):  # the second run has nothing else to do: it must still look
        got = device.sync()
        assert got["exit"] == 1
        errors = got["collections"]["contacts"]["errors"]
        assert [e["item"].endswith("broken.vcf") for e in errors] == [True]
    assert (device.contacts / "broken.vcf").exists()


EARLY_SYNC = "early sync-collection: REPORT"
SETTLED = 2.2  # seconds after a change before its getlastmodified is a mark (`dav.probe`)


def edit_on_laptop(laptop: Device, phone: Device) -> None:
    """Both devices synced; then the laptop edits two contacts and deletes one, and the
    change's time settles, so the phone's early probe alone decides (`Probe.mark`)."""
    copy_samples(laptop)
    assert laptop.sync()["exit"] == 0
    assert phone.sync()["exit"] == 0
    cards = sorted(laptop.contacts.glob("*.vcf"))
    for victim in cards[:2]:
        victim.write_text(victim.read_text(encoding="utf-8").replace(
            "END:VCARD", "NOTE:edited on the laptop\r\nEND:VCARD"), encoding="utf-8")
    cards[2].unlink()
    got = laptop.sync()
    assert got["collections"]["contacts"]["updated"] == 2, got
    assert got["collections"]["contacts"]["deleted_remote"] == 1, got
    time.sleep(SETTLED)


def test_a_change_the_early_probe_saw_is_asked_for_while_the_run_imports(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """Issue 13: the sync-collection with the data goes out over the standard library as
    soon as the early probe shows the change (Radicale answers it gzip-compressed here), and
    the engine reads that answer: no request through httpx at all."""
    laptop = Device(tmp_path / "laptop", dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    edit_on_laptop(laptop, phone)
    proc = run(phone, "-vv", "sync", "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["http_requests"] == 3  # two probes and the one sync-collection
    assert f"{EARLY_SYNC} {dav_account.url}" in proc.stderr and "-> 207" in proc.stderr
    assert "httpx" not in proc.stderr
    contacts = got["collections"]["contacts"]
    assert (contacts["downloaded"], contacts["deleted_local"]) == (2, 1)
    assert phone.uids() == laptop.uids()
    assert "edited on the laptop" in "".join(
        p.read_text(encoding="utf-8") for p in phone.contacts.glob("*.vcf"))
    again = run(phone, "sync", "--json")  # the marks it kept: a probe per collection
    assert json.loads(again.stdout)["http_requests"] == 2


@pytest.mark.parametrize("status", [401, 500])
def test_an_early_answer_only_the_client_can_judge_is_asked_for_again(
    tmp_path: Path, dav_account: DavAccount, status: int
) -> None:
    """A 401 (credentials to refresh), a 5xx (to retry) or anything but a 207 or a refused
    token: the early answer is dropped and the client sends the request again."""
    laptop = Device(tmp_path / "laptop", dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    armed = False

    def first_refused(request: Request, upstream: Upstream) -> Reply:
        if armed and request.method == "REPORT" and sum(1 for r in proxy.seen
                                                        if r.method == "REPORT") == 1:
            return Reply(status, {"WWW-Authenticate": 'Basic realm="x"'}, b"not now")
        return upstream()

    with LoopbackProxy(dav_account.url, first_refused) as proxy:
        proxied(phone, proxy)
        edit_on_laptop(laptop, phone)
        proxy.seen.clear()
        armed = True
        proc = run(phone, "-vv", "sync", "--json")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"{EARLY_SYNC} {re.escape(proxy.url)}\S+ -> {status}\b", proc.stderr)
    reports = [r for r in proxy.seen if r.method == "REPORT"]
    assert len(reports) == 2 and reports[0].body == reports[1].body
    assert "httpx: HTTP Request: REPORT" in proc.stderr
    got = json.loads(proc.stdout)
    assert got["http_requests"] == 4
    assert got["collections"]["contacts"]["downloaded"] == 2
    assert phone.uids() == laptop.uids()
    assert dav_account.password not in proc.stderr + proc.stdout
