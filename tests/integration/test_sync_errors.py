"""What `davsync sync` and `davsync status` say when something is wrong, against a real Radicale:
config and usage errors exit 2 before any harm, file-system trouble stays with its item or
collection, each error is printed once, and a refused login is remembered until a run works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device

pytestmark = pytest.mark.usefixtures("radicale_server")


def davsync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "davsync.cli", "--config", str(config), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )


def collections(account: DavAccount) -> set[str]:
    """The names of the account's collections, read with a plain PROPFIND."""
    home = f"{account.url}{account.username}/"
    answer = httpx.request("PROPFIND", home, headers={"Depth": "1"},
                           auth=(account.username, account.password))
    assert answer.status_code == 207
    import re

    hrefs = re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", answer.text)
    return {h.rstrip("/").rsplit("/", 1)[-1] for h in hrefs if h.rstrip("/") != home[:-1]
            and h.rstrip("/") != f"/{account.username}"}


def vcard(uid: str, fn: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\nEND:VCARD\r\n"


@pytest.fixture
def device(tmp_path: Path, dav_account: DavAccount) -> Device:
    dev = Device(tmp_path / "device", dav_account)
    dev.config.chmod(0o600)
    return dev


def test_a_typo_in_a_collection_name_is_a_config_error_not_a_new_collection(
    device: Device,
) -> None:
    (device.calendars / "e.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nSUMMARY:x\r\n"
        "DTSTART:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    assert device.sync()["exit"] == 0  # the account had no calendar: "personal" is created
    typo = device.config.read_text().replace("[device]", 'calendar = "persnal"\n[device]')
    device.config.write_text(typo)
    proc = device.run("sync")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"davsync: {device.config} [server] calendar: the account has no calendar named "
        "'persnal'; its calendars: 'personal'. Did you mean 'personal'? Correct the name, or "
        "set create = true in [server] to create 'persnal'\n"
    )
    assert "persnal" not in collections(device.account)
    device.config.write_text(typo.replace("[device]", "create = true\n[device]"))
    assert device.sync()["collections"]["persnal"]["uploaded"] == 1
    assert {"personal", "persnal"} <= collections(device.account)


@pytest.fixture
def not_dav() -> Iterator[str]:
    """A web server that is no DAV server: it answers every request with a web page."""

    class Page(BaseHTTPRequestHandler):
        def do_any(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PROPFIND = do_any

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_usage_and_config_errors_exit_2_with_a_message(
    device: Device, not_dav: str, tmp_path: Path
) -> None:
    text = device.config.read_text()
    proc = device.run("sync", "--only", "bogus")
    assert proc.returncode == 2
    assert ("Invalid value for '--only': 'bogus' is neither a configured kind nor a collection "
            "name; choose from contacts, calendars, personal") in proc.stderr

    device.config.write_text(text.split("[device]")[0] + f'[state]\ndir = "{tmp_path}/s"\n')
    proc = device.run("sync")
    assert (proc.returncode, proc.stderr) == (
        2, f"davsync: {device.config} [device]: nothing to sync: set contacts and/or calendars "
           "(folders of .vcf / .ics files)\n")

    afile = tmp_path / "contacts.vcf"
    afile.write_text(vcard("a", "A"))
    device.config.write_text(text.replace(f'contacts = "{device.contacts}"',
                                          f'contacts = "{afile}"'))
    proc = device.run("sync")
    assert (proc.returncode, proc.stderr) == (
        2, f"davsync: {device.config} [device] contacts: {afile} is not a folder\n")

    device.config.write_text(text.replace(device.account.url, not_dav))
    proc = device.run("sync")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"davsync: {device.config} [server] url: {not_dav} does not answer as a CardDAV server "
        f"(no contacts home at that URL, at {not_dav}.well-known/carddav or through "
        "current-user-principal); set url to the address of your DAV server or account\n"
    )


def test_a_folder_that_cannot_be_made_fails_its_collection_only(
    device: Device, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "contacts"
    device.config.write_text(device.config.read_text().replace(
        f'contacts = "{device.contacts}"', f'contacts = "{bad}"'))
    (device.calendars / "e.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nSUMMARY:x\r\n"
        "DTSTART:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    proc = device.run("sync")
    assert proc.returncode == 1
    assert proc.stdout == "contacts: 1 error\npersonal: 1 uploaded\n"
    assert proc.stderr == (f"  error: {bad}: is not a folder; nothing was synced or deleted "
                           "for this collection. Point [device] in the config at the folder of "
                           ".vcf/.ics files\n")


def test_each_error_is_printed_once_and_skipped_entries_are_reported(device: Device) -> None:
    (device.contacts / "ok.vcf").write_text(vcard("ok", "Ok"))
    (device.contacts / "broken.vcf").write_bytes(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Half")
    (device.contacts / "folder.vcf").mkdir()
    (device.contacts / "link.vcf").symlink_to(device.contacts / "ok.vcf")
    os.mkfifo(device.contacts / "pipe.vcf")
    for _ in range(2):  # the first run uploads; the second ends early: both report the same
        proc = device.run("sync")
        assert proc.returncode == 1
        assert proc.stdout.splitlines()[0] in ("contacts: 1 uploaded, 4 errors",
                                               "contacts: 4 errors")
        lines = proc.stderr.splitlines()
        assert len(lines) == len(set(lines)) == 4, proc.stderr
        assert sorted(line.split(": ", 2)[1].rsplit("/", 1)[-1] for line in lines) == [
            "broken.vcf", "folder.vcf", "link.vcf", "pipe.vcf"]
        assert f"  error: {device.contacts}/link.vcf: a symbolic link, not a regular file: " \
            "skipped" in lines


def test_a_conflict_names_the_item_and_both_places(device: Device) -> None:
    (device.contacts / "ann.vcf").write_text(vcard("ann", "Ann Base"))
    device.sync()
    (device.contacts / "ann.vcf").write_text(vcard("ann", "Ann Device"))
    account = device.account
    href = f"{account.url}{account.username}/contacts/ann.vcf"
    put = httpx.put(href, content=vcard("ann", "Ann Server"),
                    auth=(account.username, account.password))
    assert put.status_code in (201, 204)
    proc = device.run("sync")
    assert proc.returncode == 0, proc.stderr
    head, conflict = proc.stdout.splitlines()[:2]
    assert head.startswith("contacts:") and "1 conflicts" in head
    copy = next(f.name for f in device.contacts.glob("*.vcf") if f.name != "ann.vcf")
    assert conflict.startswith(
        f"  conflict: {device.contacts}/ann.vcf (Ann Device): changed on both sides; the "
        f"server's version is in {device.contacts}/ann.vcf (/{account.username}/contacts/"
        f"ann.vcf on the server), this device's version is now a separate item in "
        f"{device.contacts}/{copy} (/{account.username}/contacts/"
    )


def test_status_shows_a_refused_login_until_a_run_gets_through(device: Device) -> None:
    device.sync()
    good = device.config.read_text()
    device.config.write_text(good.replace(device.account.password, "wrong-password-123"))
    assert device.run("sync").returncode == 3
    status = device.run("status")
    assert status.returncode == 3
    assert "last sync failed at " in status.stdout
    assert "refused the credentials of user" in status.stdout
    assert "auth: login_refused as " in status.stdout
    assert status.stdout.count("refused the credentials") == 1
    data = json.loads(device.run("status", "--json").stdout)
    assert data["auth"]["state"] == "login_refused" and data["auth"]["when"]
    assert "wrong-password-123" not in status.stdout + status.stderr

    from tests.fixtures.ports import free_port

    device.config.write_text(good.replace(device.account.url, f"http://127.0.0.1:{free_port()}/")
                             .replace("[device]", "max_retries = 0\n[device]"))
    assert device.run("sync").returncode == 3
    status = device.run("status", "--json")
    assert status.returncode == 3
    assert json.loads(status.stdout)["last_failure"]["state"] == "unreachable"

    device.config.write_text(good)
    assert device.run("sync").returncode == 0
    status = device.run("status")
    assert status.returncode == 0
    assert "auth: signed_in as " in status.stdout and "failed" not in status.stdout


def test_status_exits_1_while_the_last_run_had_items_fail(device: Device) -> None:
    (device.contacts / "ok.vcf").write_text(vcard("ok", "Ok"))
    broken = device.contacts / "broken.vcf"
    broken.write_bytes(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Half")
    assert device.run("sync").returncode == 1
    status = device.run("status")
    assert status.returncode == 1
    assert f"  error: {broken}: " in status.stdout
    broken.unlink()
    assert device.run("sync").returncode == 0
    assert device.run("status").returncode == 0


def test_a_config_others_can_read_holding_a_password_gets_a_warning(device: Device) -> None:
    device.config.chmod(0o644)
    proc = device.run("sync")
    assert proc.returncode == 0
    assert proc.stderr == (
        f"WARNING davsync.config: {device.config} holds [server] password and other users can "
        f"read it: run `chmod 600 {device.config}`\n"
    )
    device.config.chmod(0o600)
    assert device.run("sync").stderr == ""
