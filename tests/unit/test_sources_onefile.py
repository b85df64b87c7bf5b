"""Stores kept in one file: what a rewrite keeps, and what a file they cannot read does."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from davsync.core.convert.google_csv import parse_csv
from davsync.sources import onefile
from davsync.sources.base import SourceError, StoreUnavailable
from davsync.sources.google_csv import GoogleCsvSource
from davsync.sources.mozcontacts import MozContactsSource
from davsync.sources.registry import open_store
from davsync.sources.singlefile import SingleFileSource

CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nX-WR-CALNAME:Home\r\n"
    "BEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\n"
    "SUMMARY:One\r\nEND:VEVENT\r\n"
    "BEGIN:VFREEBUSY\r\nDTSTAMP:20240101T000000Z\r\nFREEBUSY:20240101T100000Z/PT1H\r\n"
    "END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
)
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nBEGIN:VEVENT\r\nUID:e2\r\n"
    "DTSTAMP:20240101T000000Z\r\nDTSTART:20240103T100000Z\r\nSUMMARY:Two\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_a_calendar_rewrite_keeps_what_no_event_owns(tmp_path: Path) -> None:
    path = tmp_path / "cal.ics"
    path.write_text(CALENDAR, newline="")
    store = SingleFileSource(path, "calendars")
    assert list(store.scan()) == ["e1"]
    store.create("e2", EVENT.encode())
    store.flush()
    text = path.read_text()
    assert "X-WR-CALNAME:Home" in text and "BEGIN:VFREEBUSY" in text
    assert "SUMMARY:One" in text and "SUMMARY:Two" in text


def test_a_file_that_cannot_be_read_is_unavailable_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_text('{"id": "a", "name": ["Ann"]}')  # not an array: not an export at all
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match="expected an array"):
        MozContactsSource(path, "contacts").scan()
    assert path.read_bytes() == before


def test_an_edit_made_after_the_scan_is_kept_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_text('[{"id": "a", "name": ["Ann"]}]')
    store = MozContactsSource(path, "contacts")
    store.scan()
    path.write_text('[{"id": "a", "name": ["Ann"]}, {"id": "b", "name": ["Bob"]}]')
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Cy\r\nN:;Cy;;;\r\nEND:VCARD\r\n"
    store.create("c", card)
    store.flush()
    assert [c["id"] for c in json.loads(path.read_text())] == ["a", "b", "c"]


def test_records_without_uid_keep_their_derived_uid_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "google.csv"
    path.write_text("First Name,Last Name,E-mail 1 - Value\r\nAnn,Lee,ann@example.org\r\n"
                    "Bob,Roe,bob@example.org\r\n")
    scan = GoogleCsvSource(path, "contacts").scan()
    assert len(scan) == 2
    assert GoogleCsvSource(path, "contacts").scan() == scan
    store = GoogleCsvSource(path, "contacts")
    name = next(iter(scan))
    store.delete(name, scan[name])
    store.flush()
    remaining = GoogleCsvSource(path, "contacts").scan()
    assert remaining == {n: s for n, s in scan.items() if n != name}


# ---- a record that cannot be converted: reported, kept in place, the others synced ----

GOOD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:new\r\nFN:New One\r\nN:One;New;;;\r\nEND:VCARD\r\n"
BAD_FILES: dict[str, tuple[str, bytes]] = {
    # store type -> (file name, a file with a bad second record among good ones)
    "mozcontacts-json": ("contacts.json", json.dumps([
        {"id": "a", "name": ["Ann"]}, {"id": "b", "name": ["Bob"], "tel": [{"value": 5}]},
        {"id": "c", "name": ["Cy"]}]).encode()),
    "google-csv": ("google.csv", b"First Name,Photo,UID\r\nAnn,,a\r\nBob,ht\x01tp://x,b\r\n"
                                 b"Cy,,c\r\n"),
    "singlefile": ("contacts.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Ann\r\nEND:VCARD"
                                   b"\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob\r\n"
                                   b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Cy\r\n"
                                   b"END:VCARD\r\n"),
}
BAD_RECORD = {"mozcontacts-json": {"id": "b", "name": ["Bob"], "tel": [{"value": 5}]},
              "google-csv": {"First Name": "Bob", "Photo": "ht\x01tp://x", "UID": "b"},
              "singlefile": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob\r\n"}


def _bad_store(tmp_path: Path, store_type: str) -> tuple[Path, Any]:
    name, data = BAD_FILES[store_type]
    path = tmp_path / name
    path.write_bytes(data)
    return path, open_store(store_type, path, "contacts")


def _still_holds_bad_record(path: Path, store_type: str) -> bool:
    if store_type == "mozcontacts-json":
        return BAD_RECORD[store_type] in json.loads(path.read_text())
    if store_type == "google-csv":  # the row's cells, whatever columns the others add
        return BAD_RECORD[store_type] in parse_csv(path.read_bytes())
    return str(BAD_RECORD[store_type]) in path.read_bytes().decode()


@pytest.mark.parametrize("store_type", sorted(BAD_FILES))
def test_a_bad_record_is_skipped_by_its_uid_and_named(tmp_path: Path, store_type: str) -> None:
    _, store = _bad_store(tmp_path, store_type)
    assert sorted(store.scan()) == ["a", "c"]
    assert list(store.skipped) == ["b"]  # the UID: the sync keeps what is synced under it
    why = store.skipped["b"]
    assert why.startswith("record 2") and "not synced, and kept in the file" in why
    assert not store.partial


@pytest.mark.parametrize("store_type", sorted(BAD_FILES))
def test_a_rewrite_keeps_the_bad_record_in_place(tmp_path: Path, store_type: str) -> None:
    path, store = _bad_store(tmp_path, store_type)
    scan = store.scan()
    store.delete("a", scan["a"])
    store.create("new", GOOD)
    store.flush()
    assert _still_holds_bad_record(path, store_type)
    again = open_store(store_type, path, "contacts")
    assert sorted(again.scan()) == ["c", "new"]
    assert list(again.skipped) == ["b"]


@pytest.mark.parametrize("store_type", sorted(BAD_FILES))
def test_a_bad_record_is_never_written_over_or_deleted(tmp_path: Path, store_type: str) -> None:
    path, store = _bad_store(tmp_path, store_type)
    store.scan()
    with pytest.raises(SourceError, match="record 2"):
        store.write("b", GOOD.replace(b"UID:new", b"UID:b"), "old-sig")
    with pytest.raises(SourceError, match="record 2"):
        store.delete("b", "old-sig")
    with pytest.raises(SourceError, match="appeared"):
        store.create("b", GOOD.replace(b"UID:new", b"UID:b"))
    store.flush()
    assert path.read_bytes() == BAD_FILES[store_type][1]


def test_a_bad_record_without_uid_makes_the_scan_partial(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_text('[{"id": "a", "name": ["Ann"]}, {"name": ["Bob"], "email": 7}]')
    store = MozContactsSource(path, "contacts")
    assert list(store.scan()) == ["a"]
    assert store.partial
    assert list(store.skipped) == ["record 2 (Bob)"]
    assert "email is not a list" in store.skipped["record 2 (Bob)"]


def test_a_duplicate_uid_is_skipped_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_text('[{"id": "a", "name": ["Ann"]}, {"id": "a", "name": ["Ann 2"]}]')
    store = MozContactsSource(path, "contacts")
    scan = store.scan()
    assert list(scan) == ["a"]
    assert "same UID" in store.skipped["a"]
    store.write("a", GOOD.replace(b"UID:new", b"UID:a"), scan["a"])
    store.flush()
    names = [c["name"] for c in json.loads(path.read_text())]
    assert names == [["New One"], ["Ann 2"]]


SUFFIXES = {"mozcontacts-json": ".json", "google-csv": ".csv", "singlefile": ".vcf"}


# ---- batched writes: one rewrite per flush, whatever the number of changes ----

@pytest.mark.parametrize("store_type", ["mozcontacts-json", "google-csv", "singlefile"])
def test_many_changes_are_written_once_per_flush(
    tmp_path: Path, store_type: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / f"store{SUFFIXES[store_type]}"
    store = open_store(store_type, path, "contacts")
    store.create_store()
    store.scan()
    writes: list[Path] = []
    real = onefile.write_atomic

    def counting(target: Path, data: bytes, **kwargs: Any) -> None:
        writes.append(target)
        real(target, data, **kwargs)

    monkeypatch.setattr(onefile, "write_atomic", counting)
    sigs = {}
    for n in range(60):
        uid = f"uid-{n}"
        sigs[uid] = store.create(uid, GOOD.replace(b"new", uid.encode()))[1]
    for n in range(0, 60, 3):
        store.delete(f"uid-{n}", sigs[f"uid-{n}"])
    assert writes == []  # nothing written before the flush
    store.flush()
    store.flush()  # nothing more to write
    assert writes == [path]
    assert len(open_store(store_type, path, "contacts").scan()) == 40


def test_a_file_changed_on_disk_is_never_overwritten_by_held_changes(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_text('[{"id": "a", "name": ["Ann"]}]')
    store = MozContactsSource(path, "contacts")
    store.scan()
    store.create("new", GOOD)
    edited = '[{"id": "a", "name": ["Ann"]}, {"id": "b", "name": ["Bob"]}]'
    path.write_text(edited)
    os.utime(path, ns=(1, 1))  # a different stat even within the clock's resolution
    with pytest.raises(StoreUnavailable, match="changed on disk while syncing"):
        store.flush()
    assert path.read_text() == edited
    assert sorted(store.scan()) == ["a", "b"]


# An .ics whose event "b" (a master and its override, apart in the file) holds a broken
# override: the group is skipped together and kept byte for byte, the others sync.
BROKEN_OVERRIDE = (
    "BEGIN:VEVENT\r\nUID:b\r\nRECURRENCE-ID:20240108T100000Z\r\nSUMMARY:Bob moved\r\n"
    "DTSTART:20240109T100000Z\r\nEND:VALARM\r\nEND:VEVENT\r\n"
)
BAD_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nX-WR-CALNAME:Home\r\n"
    "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240102T100000Z\r\nSUMMARY:Ann\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=WEEKLY\r\n"
    "SUMMARY:Bob\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20240103T100000Z\r\nSUMMARY:Cy\r\nEND:VEVENT\r\n"
    + BROKEN_OVERRIDE + "END:VCALENDAR\r\n"
)


def _bad_calendar(tmp_path: Path) -> tuple[Path, SingleFileSource]:
    path = tmp_path / "cal.ics"
    path.write_text(BAD_ICS, newline="")
    return path, SingleFileSource(path, "calendars")


def test_an_ics_event_group_that_cannot_be_read_is_skipped_by_its_uid(tmp_path: Path) -> None:
    _, store = _bad_calendar(tmp_path)
    assert sorted(store.scan()) == ["a", "c"]
    assert list(store.skipped) == ["b"] and not store.partial
    why = store.skipped["b"]
    assert why.startswith("record 2 (Bob): not valid iCalendar: END:VALARM does not close VEVENT")
    assert why.endswith("not synced, and kept in the file as it is. Correct it there (or in the "
                        "app that wrote the file) and sync again")


def test_an_ics_rewrite_keeps_the_broken_group_byte_for_byte(tmp_path: Path) -> None:
    path, store = _bad_calendar(tmp_path)
    scan = store.scan()
    store.delete("a", scan["a"])
    store.create("e2", EVENT.encode())
    store.flush()
    text = path.read_bytes().decode()
    assert BROKEN_OVERRIDE in text and "SUMMARY:Bob\r\n" in text and "X-WR-CALNAME:Home" in text
    assert "SUMMARY:Ann" not in text
    again = SingleFileSource(path, "calendars")
    assert sorted(again.scan()) == ["c", "e2"] and list(again.skipped) == ["b"]


def test_an_ics_broken_group_is_never_written_over_or_deleted(tmp_path: Path) -> None:
    path, store = _bad_calendar(tmp_path)
    store.scan()
    with pytest.raises(SourceError, match="record 2"):
        store.write("b", EVENT.replace("UID:e2", "UID:b").encode(), "old-sig")
    with pytest.raises(SourceError, match="record 2"):
        store.delete("b", "old-sig")
    store.flush()
    assert path.read_bytes().decode() == BAD_ICS


def test_an_ics_broken_event_without_uid_makes_the_scan_partial(tmp_path: Path) -> None:
    path = tmp_path / "cal.ics"
    path.write_text(CALENDAR.replace("END:VCALENDAR", "BEGIN:VTODO\r\nSUMMARY:Call\r\n"
                                     "no colon here\r\nEND:VTODO\r\nEND:VCALENDAR"))
    store = SingleFileSource(path, "calendars")
    assert list(store.scan()) == ["e1"]
    assert store.partial and list(store.skipped) == ["record 2 (Call)"]


@pytest.mark.parametrize("text", ["", "BEGIN:VCARD\r\nEND:VCARD\r\n", "hello",
                                  CALENDAR.replace("END:VCALENDAR\r\n", "")])
def test_a_file_that_is_no_calendar_stays_unavailable(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cal.ics"
    path.write_bytes(text.encode())
    with pytest.raises(StoreUnavailable, match="not an iCalendar file"):
        SingleFileSource(path, "calendars").scan()
    assert path.read_bytes() == text.encode()
