"""Small pure pieces: snapshot counting, restore names, nmcli parsing, stats shape, manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from davsync.backup.manifest import Manifest, ManifestError, Snapshot
from davsync.backup.model import Record
from davsync.backup.network import parse_nmcli_metered
from davsync.backup.restore import UnsafeName, safe_parts
from davsync.backup.scan import root_labels
from davsync.backup.snapshot import count_items
from davsync.backup.stats import COMPLETED, IN_PROGRESS, YET_TO_START, Stats


def test_contacts_are_counted_by_distinct_uid() -> None:
    text = ("BEGIN:VCARD\nUID:a\nEND:VCARD\nBEGIN:VCARD\nUID:a\nEND:VCARD\n"
            "BEGIN:VCARD\r\nUID:b\r\nEND:VCARD\r\nBEGIN:VCARD\nFN:no uid\nEND:VCARD\n")
    assert count_items(text, "contacts") == 3


def test_events_and_todos_are_counted_not_alarms_or_timezones() -> None:
    text = ("BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nEND:VTIMEZONE\nBEGIN:VEVENT\nUID:e\n"
            "BEGIN:VALARM\nEND:VALARM\nEND:VEVENT\nBEGIN:VEVENT\nUID:e\nRECURRENCE-ID:1\n"
            "END:VEVENT\nBEGIN:VTODO\nUID;X-P=1:t\nEND:VTODO\nEND:VCALENDAR\n")
    assert count_items(text, "calendars") == 2


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "", "a\0b",
                                  "a/..", "a/./b", "a/"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeName):
        safe_parts(name)


def test_ordinary_names_pass() -> None:
    assert safe_parts("Pictures/2024/ü b.jpg") == ["Pictures", "2024", "ü b.jpg"]
    assert safe_parts("..hidden/x..y") == ["..hidden", "x..y"]
    assert safe_parts("C:notes/a\\..\\b") == ["C:notes", "a\\..\\b"]   # not separators here


@pytest.mark.parametrize(("output", "metered"), [
    ("GENERAL.METERED:no (guessed)\nGENERAL.METERED:unknown\n", False),
    ("GENERAL.METERED:yes\nGENERAL.METERED:no\n", True),
    ("GENERAL.METERED:yes (guessed)\n", True),
    ("", False),
])
def test_nmcli_metered_parsing(output: str, metered: bool) -> None:
    assert parse_nmcli_metered(output) is metered


def test_root_labels_are_distinct() -> None:
    assert root_labels([Path("/a/Pictures"), Path("/b/Pictures"), Path("/c/Other")]) == [
        "Pictures", "Pictures-2", "Other"]


def test_stats_shape_has_every_category_and_field() -> None:
    stats = Stats()
    assert stats.to_json()["status"] == YET_TO_START
    stats.categories["images"].status = COMPLETED
    stats.categories["contacts"].fail("book/x.vcf", "cannot read")
    out = stats.to_json()
    assert out["status"] == IN_PROGRESS and out["failed_files"] == 1
    assert set(out["categories"]) == {"images", "videos", "documents", "contacts", "calendars"}
    for cat in out["categories"].values():
        assert {"status", "last_modified", "total_files", "succeeded_files", "failed_files",
                "bytes_processed", "error_files"} <= set(cat)
    assert {"total_contacts", "succeeded_contacts", "failed_contacts"} <= set(
        out["categories"]["contacts"])
    assert {"total_events", "succeeded_events", "failed_events"} <= set(
        out["categories"]["calendars"])
    assert out["categories"]["contacts"]["error_files"] == [
        {"path": "book/x.vcf", "error": "cannot read"}]


def test_manifest_round_trip_drops_local_facts() -> None:
    rec = Record("videos", "V/a.mp4", "/home/me/V/a.mp4", 5, 6, 7, "ab", "data/x", 57, 1.0)
    m = Manifest([rec], {"contacts": Snapshot("snapshots/y", "cd", 1, 2, 3, 4.0)},
                 [("data/old", 9.0)], 10.0)
    blob = m.to_bytes()
    assert b"/home/me" not in blob
    back = Manifest.from_bytes(blob)
    assert back.files[0].name == "V/a.mp4" and back.files[0].path == ""
    assert back.files[0].inode is None and back.snapshots == m.snapshots
    assert back.garbage == [("data/old", 9.0)]
    with pytest.raises(ManifestError):
        Manifest.from_bytes(b"garbage")
