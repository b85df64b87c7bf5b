"""`davsync sync` end to end against real servers: both directions, costs, exit codes.

The two-way tests run against Radicale and Xandikos both (the `account` fixture); 401 and
configuration tests need only one server and use Radicale.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import caldav
import httpx
import pytest
from defusedxml import ElementTree

from davsync.core.item import parse_item
from tests.fixtures.radicale import DavAccount
from tests.fixtures.xandikos import XandikosAccount

Account = DavAccount | XandikosAccount

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "davsync" / "samples"


class Device:
    """A device with vdirs and a config pointing at the test's own Radicale account."""

    def __init__(self, root: Path, account: Account, **server: str) -> None:
        self.root = root
        self.contacts = root / "contacts"
        self.calendars = root / "calendars"
        self.contacts.mkdir(parents=True, exist_ok=True)
        self.calendars.mkdir(parents=True, exist_ok=True)
        self.account = account
        extra = "".join(f'{k} = "{v}"\n' for k, v in server.items())
        extra += getattr(account, "server_config", "")
        self.config = root / "config.toml"
        self.config.write_text(
            f'[server]\nurl = "{account.url}"\nusername = "{account.username}"\n'
            f'password = "{account.password}"\n{extra}'
            f'[device]\ncontacts = "{self.contacts}"\ncalendars = "{self.calendars}"\n'
            f'[state]\ndir = "{root / "state"}"\n',
            encoding="utf-8",
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "davsync.cli", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )

    def sync(self, *args: str) -> dict:  # type: ignore[type-arg]
        proc = self.run("sync", "--json", *args)
        assert proc.returncode in (0, 1), proc.stderr
        out = json.loads(proc.stdout)
        out["exit"] = proc.returncode
        return out  # type: ignore[no-any-return]

    def uids(self, kind: str = "contacts") -> dict[str, str]:
        folder = self.contacts if kind == "contacts" else self.calendars
        out = {}
        for f in folder.iterdir():
            if f.suffix in (".vcf", ".ics"):
                item = parse_item(f.read_bytes(), kind)  # type: ignore[arg-type]
                assert item.uid is not None
                out[item.uid] = item.hash
        return out


def server_items(account: Account, collection: str, kind: str = "contacts") -> dict[str, str]:
    """uid -> hash of what the server holds, read with a plain PROPFIND + GETs."""
    base = f"{account.home(kind)}{collection}/"  # type: ignore[arg-type]
    auth = (account.username, account.password)
    # Named properties, not allprop: Xandikos answers allprop by committing a resource-id to
    # the collection, which changes its ctag as a foreign write would.
    listing = httpx.request(
        "PROPFIND", base, headers={"Depth": "1", "Content-Type": "application/xml"}, auth=auth,
        content=b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>')
    assert listing.status_code == 207
    out = {}
    hrefs = [r.findtext("{DAV:}href") or "" for r in
             ElementTree.fromstring(listing.content).iter("{DAV:}response")]
    for href in hrefs:
        if href.endswith("/"):
            continue
        body = httpx.get(urljoin(base, href), auth=auth)
        item = parse_item(body.content, kind)  # type: ignore[arg-type]
        assert item.uid is not None
        out[item.uid] = item.hash
    return out


def copy_samples(device: Device) -> None:
    shutil.copytree(SAMPLES / "contacts", device.contacts, dirs_exist_ok=True)
    shutil.copytree(SAMPLES / "calendars", device.calendars, dirs_exist_ok=True)


def test_samples_round_trip_and_noop_is_one_request_per_collection(device: Device) -> None:
    copy_samples(device)
    first = device.sync()
    assert first["exit"] == 0, first
    assert first["collections"]["contacts"]["uploaded"] == len(device.uids("contacts"))
    assert first["collections"]["personal"]["uploaded"] == len(device.uids("calendars"))
    assert server_items(device.account, "contacts") == device.uids("contacts")
    assert server_items(device.account, "personal", "calendars") == device.uids("calendars")

    second = device.sync()
    assert second["http_requests"] == 2
    assert all(not any(v for k, v in c.items() if k != "errors") and not c["errors"]
               for c in second["collections"].values())


def test_a_fresh_device_downloads_everything_and_changes_flow_both_ways(
    tmp_path: Path, device: Device
) -> None:
    copy_samples(device)
    device.sync()
    other = Device(tmp_path / "other", device.account)
    got = other.sync()
    assert got["exit"] == 0
    assert other.uids("contacts") == device.uids("contacts")
    assert other.uids("calendars") == device.uids("calendars")
    for path in [*other.contacts.iterdir(), *other.calendars.iterdir()]:
        data = path.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), f"{path.name}: not CRLF"

    # one change on each side; each costs O(1) requests
    card = next(device.contacts.glob("*.vcf"))
    card.write_text(card.read_text().replace("END:VCARD", "NOTE:edited on device\r\nEND:VCARD"))
    event = next(other.calendars.glob("*.ics"))
    event.unlink()
    pushed = device.sync()
    assert pushed["collections"]["contacts"]["updated"] == 1
    assert pushed["http_requests"] <= 8
    pushed_other = other.sync()
    assert pushed_other["collections"]["personal"]["deleted_remote"] == 1
    assert pushed_other["collections"]["contacts"]["downloaded"] == 1
    assert pushed_other["http_requests"] <= 10
    pulled = device.sync()
    assert pulled["collections"]["personal"]["deleted_local"] == 1
    assert device.uids("contacts") == other.uids("contacts")
    assert device.uids("calendars") == other.uids("calendars")


def test_other_clients_items_without_uid_and_odd_hrefs_and_recurrences(device: Device) -> None:
    account = device.account
    device.sync()  # creates the collections
    client = caldav.DAVClient(url=account.url, username=account.username,
                              password=account.password)
    calendar = client.principal().calendar(name="personal")  # displayname set by davsync
    calendar.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        "UID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20260105T090000\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\n"
        "SUMMARY:Stand-up\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly-1\r\n"
        "DTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260112T090000\r\n"
        "DTSTART;TZID=Europe/Berlin:20260112T100000\r\nSUMMARY:Stand-up (later)\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    calendar.save_todo(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VTODO\r\nUID:todo-1\r\n"
        "DTSTAMP:20260101T000000Z\r\nSUMMARY:Steuererklärung\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    odd = f"{account.home('contacts')}contacts/not-the-uid.vcf"
    put = httpx.put(odd, auth=(account.username, account.password),
                    content="BEGIN:VCARD\r\nVERSION:4.0\r\nUID:real-uid\r\nFN:Ödön\r\nEND:VCARD\r\n"
                    .encode(), headers={"Content-Type": "text/vcard"})
    assert put.status_code == 201
    got = device.sync()
    assert got["exit"] == 0, got
    assert set(device.uids("calendars")) == {"weekly-1", "todo-1"}
    weekly = next(p for p in device.calendars.iterdir() if "weekly" in p.name).read_text()
    assert weekly.count("BEGIN:VEVENT") == 2 and "RECURRENCE-ID" in weekly
    assert set(device.uids("contacts")) == {"real-uid"}
    # edit it on the device: the update goes to the server's own href, not a new one
    card = next(device.contacts.glob("*.vcf"))
    card.write_text(card.read_text().replace("Ödön", "Ödön von Horváth"))
    assert device.sync()["collections"]["contacts"]["updated"] == 1
    assert "Horváth" in httpx.get(odd, auth=(account.username, account.password)).text


def test_bad_items_are_reported_kept_and_do_not_stop_the_run(device: Device) -> None:
    copy_samples(device)
    broken = device.contacts / "broken.vcf"
    broken.write_bytes(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Half")
    (device.contacts / "nouid.vcf").write_bytes(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No UID\r\n"
                                                b"END:VCARD\r\n")
    (device.contacts / "latin1.vcf").write_bytes("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:latin\r\n"
                                                 "FN:Jürgen Müller\r\nEND:VCARD\r\n"
                                                 .encode("cp1252"))
    got = device.sync()
    assert got["exit"] == 1
    errors = got["collections"]["contacts"]["errors"]
    assert [e["item"].endswith("broken.vcf") for e in errors] == [True]
    assert "never closed" in errors[0]["reason"]
    assert broken.read_bytes() == b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Half"
    assert parse_item((device.contacts / "nouid.vcf").read_bytes(), "contacts").uid
    on_server = server_items(device.account, "contacts")
    assert "latin" in on_server
    assert len(on_server) == len(list(device.contacts.glob("*.vcf"))) - 1
    assert got["collections"]["personal"]["errors"] == []


def test_wrong_password_exits_3_and_names_the_server(tmp_path: Path,
                                                      dav_account: DavAccount) -> None:
    bad = Device(tmp_path / "bad", DavAccount(dav_account.server, dav_account.username,
                                              "wrong-password-123"))
    proc = bad.run("sync", "--json")
    assert proc.returncode == 3
    assert "wrong-password-123" not in proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert "401" in out["error"] or "credentials" in out["error"].lower()


def test_unreachable_server_exits_3(tmp_path: Path, dav_account: DavAccount) -> None:
    from tests.fixtures.ports import free_port

    dev = Device(tmp_path / "x", dav_account)
    dev.config.write_text(dev.config.read_text().replace(
        dav_account.url, f"http://127.0.0.1:{free_port()}/") + "", encoding="utf-8")
    text = dev.config.read_text().replace("[device]", "max_retries = 0\n[device]")
    dev.config.write_text(text, encoding="utf-8")
    proc = dev.run("sync")
    assert proc.returncode == 3
    assert "reach" in proc.stderr.lower() or "connect" in proc.stderr.lower()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nurl = "ftp://x"\nusername = "a"\n', "url"),
        ('[server]\nurl = "http://x/"\nusername = "a"\nconflict = "maybe"\n', "conflict"),
        ('[server]\nurl = "http://x/"\nusername = "a"\npasword = "typo"\n', "pasword"),
        ('[server\n', "not valid TOML"),
        ('[server]\nurl = "http://x/"\n', "username"),
    ],
)
def test_config_errors_name_the_key_and_exit_2(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "davsync.cli", "--config", str(config), "sync"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert key in proc.stderr


def test_kill_9_at_any_instant_neither_loses_nor_duplicates(device: Device) -> None:
    for i in range(150):
        (device.contacts / f"c{i}.vcf").write_text(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:kill-{i}\r\nFN:Person {i}\r\nEND:VCARD\r\n")
    device.sync()  # bulk-created collection
    for i in range(150, 230):  # item-by-item uploads to an existing collection
        (device.contacts / f"c{i}.vcf").write_text(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:kill-{i}\r\nFN:Person {i}\r\nEND:VCARD\r\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for delay in (0.3, 0.6, 0.9, 1.3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "davsync.cli", "--config", str(device.config), "sync"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = device.sync()
    assert final["exit"] == 0, final
    again = device.sync()
    assert again["http_requests"] == 2
    on_server = server_items(device.account, "contacts")
    assert on_server == device.uids("contacts")
    assert len(on_server) == 230
    assert not list(device.contacts.glob(".davsync-*"))
