"""`davsync sync` against a real Radicale behind a fault-injecting proxy: the server is not
trusted. It may point davsync at another server, list another collection's items, trickle its
answers, flood them, or use XML entities; none of it leaks a credential, touches what is not
ours, hangs a run, or fills the memory, and every refusal is one clear message."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from davsync.dav.basic_auth import BasicAuthenticator
from davsync.dav.client import DavClient
from davsync.dav.discovery import find_collection
from davsync.secret import Secret
from tests.fixtures.proxy import LoopbackProxy, Reply, Request, flood
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device, copy_samples
from tests.unit.test_dav_multistatus import BILLION_LAUGHS


def behind(
    proxy: LoopbackProxy, root: Path, account: DavAccount, **server: float | bool
) -> Device:
    """A device whose [server] url is the proxy in front of the account's Radicale."""
    device = Device(root, account)
    text = device.config.read_text(encoding="utf-8").replace(account.url, proxy.url, 1)
    numbers = "".join(f"{key} = {str(value).lower()}\n" for key, value in server.items())
    device.config.write_text(text.replace("[device]", numbers + "[device]", 1), encoding="utf-8")
    return device


def run(device: Device, *args: str) -> subprocess.CompletedProcess[str]:
    return device.run("sync", "--json", "--only", "contacts", *args)


def vcard(uid: str) -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Person {uid}\r\nN:{uid};;;;\r\n"
            "END:VCARD\r\n").encode()


def is_sync_report(request: Request, account: DavAccount) -> bool:
    return (request.method == "REPORT" and b"sync-collection" in request.body
            and request.path == f"/{account.username}/contacts/")


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


# -- item 6: nothing goes to another origin ----------------------------------------------------


def test_a_home_set_on_another_server_gets_no_credential_and_no_data(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy,
    recorder: LoopbackProxy,
) -> None:
    def elsewhere(request: Request, upstream: Callable[[], Reply]) -> Reply:
        reply = upstream()
        assert isinstance(reply.body, bytes)
        reply.body = re.sub(
            rb"(addressbook-home-set[^>]*>\s*<(?:\w+:)?href>)[^<]*",
            rb"\g<1>" + f"{recorder.url}{dav_account.username}/".encode(), reply.body)
        return reply

    hostile_proxy.handler = elsewhere
    device = behind(hostile_proxy, tmp_path / "d", dav_account)
    copy_samples(device)
    proc = run(device)
    no_traceback(proc)
    assert recorder.requests() == []
    assert hostile_proxy.requests("PUT") == [] and hostile_proxy.requests("MKCOL") == []
    error = json.loads(proc.stdout)["error"]
    assert f"{recorder.url}{dav_account.username}/contacts/" in error
    assert "[server] url" in error and dav_account.password not in proc.stdout + proc.stderr
    assert proc.returncode == 1


def test_a_stored_collection_url_on_another_server_is_not_used(
    tmp_path: Path, dav_account: DavAccount, recorder: LoopbackProxy,
) -> None:
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    assert device.sync("--only", "contacts")["exit"] == 0
    with sqlite3.connect(tmp_path / "d" / "state" / "state.sqlite") as db:
        db.execute("UPDATE collections SET url = ?", (f"{recorder.url}stolen/",))
    proc = run(device)
    assert proc.returncode == 0, proc.stderr
    assert recorder.requests() == []
    assert f"the stored URL {recorder.url}stolen/ is not on the configured server" in proc.stderr
    with sqlite3.connect(tmp_path / "d" / "state" / "state.sqlite") as db:
        urls = [row[0] for row in db.execute("SELECT url FROM collections")]
    assert urls == [f"{dav_account.url}{dav_account.username}/contacts/"]


# -- item 7: only members of the collection ----------------------------------------------------


def test_hrefs_outside_the_collection_are_never_synced_and_reported_once(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy,
    recorder: LoopbackProxy,
) -> None:
    auth = BasicAuthenticator(dav_account.username, Secret(dav_account.password))
    with DavClient(dav_account.url, auth) as dav:
        other = find_collection(dav, "contacts", "other")
        other.ensure_exists()
        other.create(other.href_for("evil"), vcard("evil"))
    extra = (f'<response xmlns="DAV:"><href>../other/evil.vcf</href><propstat><prop>'
             '<getetag>"x"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>'
             f'</response><response xmlns="DAV:"><href>{recorder.url}'
             f"{dav_account.username}/contacts/far.vcf</href><propstat><prop>"
             '<getetag>"y"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>'
             "</response>").encode()

    def smuggle(request: Request, upstream: Callable[[], Reply]) -> Reply:
        reply = upstream()
        if is_sync_report(request, dav_account) and isinstance(reply.body, bytes):
            reply.body = re.sub(rb"(<(?:\w+:)?sync-token>)", extra + rb"\1", reply.body,
                                count=1)
        return reply

    hostile_proxy.handler = smuggle
    device = behind(hostile_proxy, tmp_path / "d", dav_account, create=True)
    copy_samples(device)
    first = run(device)
    assert first.returncode == 0, first.stderr
    (device.contacts / "new.vcf").write_bytes(vcard("new-on-device"))
    second = run(device)
    assert second.returncode == 0, second.stderr
    assert "evil" not in device.uids("contacts")
    for proc in (first, second):
        for href in (f"/{dav_account.username}/other/evil.vcf",
                     f"{recorder.url.rstrip('/')}/{dav_account.username}/contacts/far.vcf"):
            assert proc.stderr.count(f"the server listed {href}, which is not an item") == 1
    assert recorder.requests() == []
    assert not [s for s in hostile_proxy.requests() if "/other/" in s.path]


# -- item 8: a password in the URL ---------------------------------------------------------------


def test_a_password_in_the_url_signs_in_and_is_never_stored_or_printed(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    host = dav_account.url.removeprefix("http://")
    with_password = f"http://{dav_account.username}:{dav_account.password}@{host}"
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    assert device.sync("--only", "contacts")["exit"] == 0  # state from an older davsync:
    state = tmp_path / "d" / "state" / "state.sqlite"
    with sqlite3.connect(state) as db:  # it keyed the state by the URL as configured
        db.execute("UPDATE collections SET name = ?",
                   (f"contacts:{dav_account.username}@{with_password}",))
        db.execute("UPDATE collections SET name = 'contacts:contacts@' || ?", (with_password,))
        db.execute("UPDATE items SET collection = 'contacts:contacts@' || ?", (with_password,))
    device.config.write_text(
        f'[server]\nurl = "{with_password}"\n[device]\ncontacts = "{device.contacts}"\n'
        f'[state]\ndir = "{tmp_path / "d" / "state"}"\n', encoding="utf-8")
    (device.contacts / "new.vcf").write_bytes(vcard("new-on-device"))
    proc = device.run("-vv", "sync", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["collections"]["contacts"]["uploaded"] == 1
    assert json.loads(proc.stdout)["collections"]["contacts"]["downloaded"] == 0  # state kept
    status = device.run("status", "--json")
    assert status.returncode == 0, status.stderr
    for text in (proc.stdout, proc.stderr, status.stdout, status.stderr):
        assert dav_account.password not in text
    for path in state.parent.iterdir():
        assert dav_account.password.encode() not in path.read_bytes(), path


# -- item 9: an overall deadline -----------------------------------------------------------------


def test_a_server_trickling_its_answer_stops_the_run_with_exit_3_keeping_its_work(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy,
) -> None:
    """The second multiget batch comes one byte per 50 ms, status line first (minutes in
    all): the run ends at the 2 s request deadline, naming the server, and keeps the first
    batch; the next run finishes the rest."""
    seeder = Device(tmp_path / "seed", dav_account)
    for n in range(120):
        (seeder.contacts / f"{n}.vcf").write_bytes(vcard(f"c{n:03d}"))
    assert seeder.sync("--only", "contacts")["exit"] == 0
    multigets: list[Request] = []

    def stall_second_multiget(request: Request, upstream: Callable[[], Reply]) -> Reply:
        if request.method == "REPORT" and b"address-data" in request.body and \
                b"multiget" not in request.body:  # no one-request pairing: multigets tested
            return Reply(403, {}, b"")
        reply = upstream()
        if request.method == "REPORT" and b"addressbook-multiget" in request.body:
            multigets.append(request)
            if len(multigets) == 2:
                reply.trickle = 0.05
        return reply

    hostile_proxy.handler = stall_second_multiget
    device = behind(hostile_proxy, tmp_path / "d", dav_account, request_timeout=2,
                    read_timeout=5, concurrency=1, max_retries=0)
    proc = run(device)
    no_traceback(proc)
    assert proc.returncode == 3, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert hostile_proxy.url.rstrip("/") in error and "did not finish within 2 s" in error
    kept = len(device.uids("contacts"))
    assert kept >= 50
    hostile_proxy.handler = lambda request, upstream: upstream()
    again = run(device)
    assert again.returncode == 0, again.stderr
    assert len(device.uids("contacts")) == 120
    assert json.loads(again.stdout)["collections"]["contacts"]["downloaded"] == 120 - kept


# -- item 10: bounded answers, no entities ------------------------------------------------------

MEASURED_RUN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from davsync.config import load_config
    from davsync.app.sync import run_sync
    result = run_sync(load_config(Path(sys.argv[1])), only=("contacts",))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking process
    status = Path("/proc/self/status").read_text()
    peak_mib = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps({"result": result.as_json(), "peak_mib": peak_mib}))
""")


@pytest.mark.parametrize(
    ("floods", "limit"),
    [("PROPFIND", "1 MiB, the most davsync reads of an answer about one resource"),
     ("REPORT", "32 MiB, the most davsync reads of a collection listing")],
)
def test_a_100_mb_answer_is_refused_at_its_limit_without_being_read_or_quoted(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy, floods: str,
    limit: str,
) -> None:
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    assert device.sync("--only", "contacts")["exit"] == 0
    (device.contacts / "new.vcf").write_bytes(vcard("new-on-device"))
    size = 100 * 1000 * 1000

    def huge(request: Request, upstream: Callable[[], Reply]) -> Reply:
        if request.method == floods and request.path == f"/{dav_account.username}/contacts/":
            return Reply(207, {"Content-Type": "application/xml"}, flood(size), length=size)
        return upstream()

    hostile_proxy.handler = huge
    behind(hostile_proxy, tmp_path / "d", dav_account)
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED_RUN, str(device.config)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    errors = out["result"]["collections"].get("contacts", {}).get("errors", [])
    message = out["result"].get("error") or " ".join(e["reason"] for e in errors)
    assert f"the answer is larger than {limit}" in message, out
    assert "<x>" not in message and len(message) < 500
    assert out["peak_mib"] < 150  # reading 100 MB whole took 440-530 MB


def test_an_entity_expansion_answer_is_refused_with_a_clear_error(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy,
) -> None:
    def laughs(request: Request, upstream: Callable[[], Reply]) -> Reply:
        if is_sync_report(request, dav_account):
            return Reply(207, {"Content-Type": "application/xml"}, BILLION_LAUGHS)
        return upstream()

    hostile_proxy.handler = laughs
    device = behind(hostile_proxy, tmp_path / "d", dav_account)
    copy_samples(device)
    proc = run(device)
    no_traceback(proc)
    assert proc.returncode == 1
    errors = json.loads(proc.stdout)["collections"]["contacts"]["errors"]
    assert [e["reason"] for e in errors] == [
        f"{hostile_proxy.url}{dav_account.username}/contacts/: the server's answer uses XML "
        "DTDs or entities (DTDForbidden); refusing to parse it"]
