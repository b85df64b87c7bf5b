"""Every device store kind syncs with a real Radicale: an export goes up, comes back onto a fresh
store of the same type with the same records, and an unchanged export moves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from davsync.core.convert import derived_uid, google_csv, mozcontact, singlefile
from tests.fixtures.radicale import DavAccount

ROOT = Path(__file__).resolve().parents[2]

VCF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ann Lee\r\nN:Lee;Ann;;;\r\n"
    "TEL;TYPE=cell:+1 555 0100\r\nNOTE:likes commas\\, and semicolons\\;\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jörg Ünal\r\nN:Ünal;Jörg;;;\r\n"
    "EMAIL;TYPE=work:j@example.org\r\nEND:VCARD\r\n"
)
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nX-WR-CALNAME:Home\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20240102T100000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"
    "SUMMARY:Weekly\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:e2\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;VALUE=DATE:20240105\r\n"
    "SUMMARY:All day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
MOZ = json.dumps([
    {"id": "m1", "name": ["Ann Lee"], "givenName": ["Ann"], "familyName": ["Lee"],
     "tel": [{"type": ["mobile"], "value": "+1 555 0100", "pref": True}],
     "bday": "1985-04-12T00:00:00.000Z", "category": ["family"]},
    {"name": ["No Id"], "email": [{"type": ["home"], "value": "n@example.org"}]},
])
CSV = (
    "First Name,Last Name,E-mail 1 - Label,E-mail 1 - Value,Phone 1 - Label,Phone 1 - Value,"
    "Notes,Labels\r\n"
    "Ann,Lee,* Home,ann@example.org,Mobile,+1 555 0100,\"line one\nline two\","
    "Family ::: * myContacts\r\n"
    "Bob,Roe,Work,bob@example.org,,,,* myContacts\r\n"
)


def _records_vcf(data: bytes) -> object:
    return sorted(item.hash for item in singlefile.split_vcards(data))


def _records_ics(data: bytes) -> object:
    return sorted(item.hash for item in singlefile.split_calendar(data)[0])


def _records_moz(data: bytes) -> object:
    """The contacts, an `id` the export did not have (derived, docs/conversion.md) left out."""
    out = []
    for contact in mozcontact.parse_export(data):
        without_id = replace(contact, id="")
        if contact.id == derived_uid("mozcontact", mozcontact.identity_key(without_id)):
            contact = without_id
        out.append(json.dumps(mozcontact.to_json(contact), sort_keys=True))
    return sorted(out)


def _records_csv(data: bytes) -> object:
    return sorted(json.dumps({k: v for k, v in row.items() if k != "UID"}, sort_keys=True)
                  for row in google_csv.parse_csv(data))


Records = Callable[[bytes], object]
CASES: list[tuple[str, str, str, str, Records]] = [
    ("singlefile", "contacts", "all.vcf", VCF, _records_vcf),
    ("singlefile", "calendars", "all.ics", ICS, _records_ics),
    ("mozcontacts-json", "contacts", "contacts.json", MOZ, _records_moz),
    ("google-csv", "contacts", "google.csv", CSV, _records_csv),
]


class StoreDevice:
    """A device whose one store is of `store_type`, synced against the test's account."""

    def __init__(self, root: Path, account: DavAccount, store_type: str, kind: str,
                 filename: str) -> None:
        root.mkdir(parents=True)
        self.path = root / filename
        self.config = root / "config.toml"
        self.config.write_text(
            f'[server]\nurl = "{account.url}"\nusername = "{account.username}"\n'
            f'password = "{account.password}"\ncreate = true\n'
            f'[device]\n{kind} = {{ type = "{store_type}", path = "{self.path}" }}\n'
            f'[state]\ndir = "{root / "state"}"\n', encoding="utf-8")

    def sync(self) -> dict:  # type: ignore[type-arg]
        returncode, report = self.sync_reporting()
        assert returncode == 0, report
        assert not report["errors"], report
        return report

    def sync_reporting(self) -> tuple[int, dict]:  # type: ignore[type-arg]
        """One run's exit status and its collection's report, errors and all."""
        proc = subprocess.run(
            [sys.executable, "-m", "davsync.cli", "--config", str(self.config), "sync",
             "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.stdout, proc.stderr
        (report,) = json.loads(proc.stdout)["collections"].values()
        return proc.returncode, report


def _moved(report: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in report.items() if k != "errors" and v}


@pytest.mark.parametrize(("store_type", "kind", "filename", "text", "records"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_store_syncs_up_and_back_onto_a_fresh_store(
    tmp_path: Path, dav_account: DavAccount, store_type: str, kind: str, filename: str,
    text: str, records: Records,
) -> None:
    phone = StoreDevice(tmp_path / "phone", dav_account, store_type, kind, filename)
    phone.path.write_text(text, encoding="utf-8", newline="")
    assert phone.sync()["uploaded"] == 2
    assert _moved(phone.sync()) == {}  # an unchanged export moves nothing

    fresh = StoreDevice(tmp_path / "fresh", dav_account, store_type, kind, filename)
    assert fresh.sync()["downloaded"] == 2
    assert records(fresh.path.read_bytes()) == records(phone.path.read_bytes())
    assert _moved(fresh.sync()) == {}
    assert _moved(phone.sync()) == {}


def test_a_record_that_cannot_be_converted_is_reported_kept_and_never_deleted(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    phone = StoreDevice(tmp_path / "phone", dav_account, "mozcontacts-json", "contacts",
                        "contacts.json")
    phone.path.write_text(json.dumps([{"id": "a", "name": ["Ann"]},
                                      {"id": "b", "name": ["Bob"]}]))
    assert phone.sync()["uploaded"] == 2
    broken = json.dumps([{"id": "a", "name": ["Ann"]},
                         {"id": "b", "name": ["Bob"], "tel": [{"value": 5}]},
                         {"name": ["Dee"], "email": 7},
                         {"id": "c", "name": ["Cy"]}])
    phone.path.write_text(broken)
    returncode, report = phone.sync_reporting()
    assert returncode == 1 and report["uploaded"] == 1 and not report.get("deleted_remote")
    reasons = {e["item"].removeprefix(f"{phone.path}/"): e["reason"] for e in report["errors"]}
    assert reasons["b"].startswith("record 2 (Bob): tel 1.value is a int, not text; not synced")
    assert reasons["record 3 (Dee)"].startswith("record 3 (Dee): email is not a list")
    assert phone.path.read_text() == broken

    fresh = StoreDevice(tmp_path / "fresh", dav_account, "mozcontacts-json", "contacts",
                        "contacts.json")
    assert fresh.sync()["downloaded"] == 3  # Bob's server copy is still there
    names = sorted(c["name"][0] for c in json.loads(fresh.path.read_text()))
    assert names == ["Ann", "Bob", "Cy"]
    returncode, again = phone.sync_reporting()  # reported again, still nothing deleted
    assert returncode == 1 and len(again["errors"]) == 2 and not again.get("deleted_remote")
    assert phone.path.read_text() == broken


def test_a_folder_of_one_contact_files_syncs_up_and_back(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    phone = StoreDevice(tmp_path / "phone", dav_account, "mozcontacts-json", "contacts",
                        "contacts")
    phone.path.mkdir()
    records = json.loads(MOZ)
    (phone.path / "1.json").write_text(json.dumps(records[0]))
    (phone.path / "2.json").write_text(json.dumps(records[1:]))  # an array of one
    assert phone.sync()["uploaded"] == 2
    assert _moved(phone.sync()) == {}

    fresh = StoreDevice(tmp_path / "fresh", dav_account, "mozcontacts-json", "contacts",
                        "contacts")
    assert fresh.sync()["downloaded"] == 2  # the missing folder is created on a first run
    files = sorted(p.name for p in fresh.path.iterdir())
    assert "m1.json" in files and len(files) == 2
    assert json.loads((fresh.path / "m1.json").read_text()) == records[0]
    (fresh.path / "m1.json").unlink()
    assert fresh.sync()["deleted_remote"] == 1
    assert phone.sync()["deleted_local"] == 1
    assert sorted(p.name for p in phone.path.iterdir()) == ["2.json"]


def test_an_ics_event_that_cannot_be_read_is_reported_kept_and_never_deleted(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    phone = StoreDevice(tmp_path / "phone", dav_account, "singlefile", "calendars", "all.ics")
    phone.path.write_text(ICS, encoding="utf-8", newline="")
    assert phone.sync()["uploaded"] == 2
    broken_e2 = ("BEGIN:VEVENT\r\nUID:e2\r\nDTSTAMP:20240101T000000Z\r\n"
                 "DTSTART;VALUE=DATE:20240105\r\nSUMMARY:All day\r\nthis line is broken\r\n"
                 "END:VEVENT\r\n")
    start = ICS.index("BEGIN:VEVENT\r\nUID:e2")
    broken = (ICS[:start] + broken_e2 + "BEGIN:VEVENT\r\nUID:e3\r\nDTSTAMP:20240101T000000Z\r\n"
              "DTSTART;VALUE=DATE:20240106\r\nSUMMARY:New\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    phone.path.write_text(broken, encoding="utf-8", newline="")
    returncode, report = phone.sync_reporting()
    assert returncode == 1 and report["uploaded"] == 1 and not report.get("deleted_remote")
    (error,) = report["errors"]
    assert error["item"].removeprefix(f"{phone.path}/") == "e2"
    assert error["reason"].startswith("record 2 (All day): not valid iCalendar: line without "
                                      "':' separator: 'this line is broken'; not synced")

    fresh = StoreDevice(tmp_path / "fresh", dav_account, "singlefile", "calendars", "all.ics")
    assert fresh.sync()["downloaded"] == 3  # e2's server copy is still there
    fresh_events = singlefile.split_calendar(fresh.path.read_bytes())[0]
    assert sorted(item.uid or "" for item in fresh_events) == ["e1", "e2", "e3"]
    # A change from another device rewrites the phone's file: the broken event stays as it was.
    fresh.path.write_bytes(fresh.path.read_bytes().replace(b"SUMMARY:Weekly",
                                                           b"SUMMARY:Weekly (moved)"))
    assert fresh.sync()["updated"] == 1
    returncode, again = phone.sync_reporting()
    assert returncode == 1 and again["downloaded"] == 1 and not again.get("deleted_remote")
    text = phone.path.read_bytes().decode()
    assert broken_e2 in text and "SUMMARY:Weekly (moved)" in text and "UID:e3" in text
