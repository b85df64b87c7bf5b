"""Stores kept in one file: what a rewrite keeps, and what a file they cannot read does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from davsync.sources.base import StoreUnavailable
from davsync.sources.google_csv import GoogleCsvSource
from davsync.sources.mozcontacts import MozContactsSource
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
    text = path.read_text()
    assert "X-WR-CALNAME:Home" in text and "BEGIN:VFREEBUSY" in text
    assert "SUMMARY:One" in text and "SUMMARY:Two" in text


def test_a_file_that_cannot_be_read_is_unavailable_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_text('[{"id": "a", "name": ["Ann"]}, {"id": "b", "tel": [{"value": 5}]}]')
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match="record 2"):
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
    remaining = GoogleCsvSource(path, "contacts").scan()
    assert remaining == {n: s for n, s in scan.items() if n != name}
