"""Data safety of `davsync sync` against a real Radicale: a device folder that vanished, a
collection gone from the server, a deletion racing the download, items the server refuses or
that are too large, and a kill -9 at every request of a first upload and of a pairing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx

from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import Device, server_items

MISSING = "the device folder is missing"


def card(uid: str, fn: str, extra: str = "") -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\n{extra}END:VCARD\r\n"


def event(uid: str, dtstart: str = "20260105T090000Z") -> str:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{dtstart}\r\nSUMMARY:{uid}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def put(account: DavAccount, collection: str, name: str, text: str) -> None:
    url = f"{account.url}{account.username}/{collection}/{name}"
    answer = httpx.put(url, content=text.encode(), auth=(account.username, account.password))
    assert answer.status_code in (201, 204), answer.text


def delete(account: DavAccount, path: str) -> None:
    answer = httpx.delete(f"{account.url}{account.username}/{path}",
                          auth=(account.username, account.password))
    assert answer.status_code in (200, 204), answer.text


def server_hrefs(account: DavAccount, collection: str) -> list[str]:
    base = f"{account.url}{account.username}/{collection}/"
    listing = httpx.request("PROPFIND", base, headers={"Depth": "1"},
                            auth=(account.username, account.password))
    if listing.status_code == 404:
        return []
    assert listing.status_code == 207
    hrefs = re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", listing.text)
    return [h for h in hrefs if not h.endswith("/")]


def write_cards(device: Device, cards: dict[str, str]) -> None:
    for uid, fn in cards.items():
        (device.contacts / f"{uid}.vcf").write_text(card(uid, fn), encoding="utf-8")


# ---- a device folder that vanished (issue 8.1) ------------------------------------------------

def test_a_vanished_device_folder_stops_the_collection_and_deletes_nothing(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(4)})
    assert laptop.sync()["exit"] == 0
    phone = Device(tmp_path / "phone", dav_account)
    assert phone.sync()["exit"] == 0 and len(phone.uids()) == 4

    laptop.contacts.rename(tmp_path / "moved-away")  # an unmounted disk, a renamed folder
    proc = laptop.run("sync")
    assert proc.returncode == 1
    assert f"error: {laptop.contacts}: {MISSING}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not laptop.contacts.exists()  # not re-created empty
    assert len(server_items(dav_account, "contacts")) == 4
    again = laptop.sync()  # still stopped, still nothing deleted; the calendar still syncs
    assert again["exit"] == 1 and MISSING in again["collections"]["contacts"]["errors"][0][
        "reason"]
    assert again["collections"]["personal"]["errors"] == []
    assert phone.sync()["exit"] == 0 and len(phone.uids()) == 4

    (tmp_path / "moved-away").rename(laptop.contacts)  # the disk is back: all is well
    back = laptop.sync()
    assert back["exit"] == 0 and back["collections"]["contacts"]["deleted_remote"] == 0


def test_an_emptied_folder_asks_before_deleting_every_item_however_few(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(4)})
    assert laptop.sync()["exit"] == 0
    for path in laptop.contacts.glob("*.vcf"):  # an empty mount point looks like this
        path.unlink()
    stopped = laptop.sync()
    assert stopped["exit"] == 1
    reason = stopped["collections"]["contacts"]["errors"][0]["reason"]
    assert reason.startswith("would delete 4 of 4 items on the server; stopped for safety")
    assert len(server_items(dav_account, "contacts")) == 4
    allowed = laptop.sync("--allow-mass-delete")
    assert allowed["exit"] == 0 and allowed["collections"]["contacts"]["deleted_remote"] == 4
    assert server_items(dav_account, "contacts") == {}


def test_a_device_folder_that_is_a_file_is_reported_not_read_as_empty(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {"c0": "Person 0"})
    assert laptop.sync()["exit"] == 0
    shutil.rmtree(laptop.contacts)
    laptop.contacts.write_text("not a folder")
    got = laptop.sync()
    assert got["exit"] == 1
    reason = got["collections"]["contacts"]["errors"][0]["reason"]
    assert reason.startswith("is not a folder; nothing was synced or deleted")
    assert len(server_items(dav_account, "contacts")) == 1


def test_a_first_run_creates_a_configured_folder_that_does_not_exist_yet(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {"c0": "Person 0"})
    assert laptop.sync()["exit"] == 0
    phone = Device(tmp_path / "phone", dav_account)
    shutil.rmtree(phone.contacts)
    got = phone.sync()
    assert got["exit"] == 0, got
    assert phone.uids() == laptop.uids()
