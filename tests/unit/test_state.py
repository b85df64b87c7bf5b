"""The SQLite state store: migrations, records, and refusing a newer schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from davsync.app.sync import name_in_state_key, state_key
from davsync.core.synced import Synced
from davsync.report import report_keys
from davsync.state.migrations import STEPS
from davsync.state.store import StateError, StateStore


def test_fresh_store_is_migrated_and_round_trips(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.save_collection("c", "contacts", "http://x/c/")
    store.save_marks("c", "ctag1", "tok1")
    rec = Synced("u", "u.vcf", "1:2:3", "/c/u.vcf", '"e"', "h")
    store.record("c", rec, "BEGIN:VCARD\r\nFN:Zoë\r\nEND:VCARD\r\n")
    store.close()
    again = StateStore(tmp_path / "s.sqlite")
    assert again.items("c") == {"u": rec}
    assert again.content("c", "u") == "BEGIN:VCARD\r\nFN:Zoë\r\nEND:VCARD\r\n"
    coll = again.collection("c")
    assert coll is not None and (coll.ctag, coll.sync_token) == ("ctag1", "tok1")
    again.forget("c", "u")
    assert again.items("c") == {}


def test_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(STEPS) + 1}")
    db.close()
    with pytest.raises(StateError, match="upgrade davsync"):
        StateStore(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match="unusable"):
        StateStore(path)


def test_report_keys_are_names_unless_two_collections_share_one() -> None:
    assert report_keys([("contacts", "contacts"), ("calendars", "personal")]) == [
        "contacts", "personal"]
    assert report_keys([("contacts", "Default"), ("calendars", "Default")]) == [
        "contacts/Default", "calendars/Default"]


def test_the_name_comes_back_out_of_a_state_key() -> None:
    key = state_key("calendars", "a@b:c", "https://u@dav.example.org/")
    assert name_in_state_key(key, "calendars") == "a@b:c"


def test_texts_round_trip_small_as_text_large_compressed_and_older_blobs_still_read(
    tmp_path: Path,
) -> None:
    """A small text is stored as it is (compressing it cost more than recording it), a large
    one (a photo) as zlib data; a state written before keeps its zlib BLOBs readable."""
    import zlib

    store = StateStore(tmp_path / "s.sqlite")
    store.save_collection("c", "contacts", "http://x/c/")
    small = "BEGIN:VCARD\r\nFN:Zoë\r\nEND:VCARD\r\n"
    large = "BEGIN:VCARD\r\nPHOTO:" + "QUJD" * 5000 + "\r\nEND:VCARD\r\n"
    for uid, text in (("s", small), ("l", large)):
        store.record("c", Synced(uid, f"{uid}.vcf", "1:2:3", f"/c/{uid}.vcf", '"e"', "h"), text)
    stored = dict(store.db.execute("SELECT uid, content FROM items").fetchall())
    assert stored["s"] == small and isinstance(stored["l"], bytes) and len(stored["l"]) < 2000
    store.db.execute("UPDATE items SET content = ? WHERE uid = 's'",
                     (zlib.compress(small.encode("utf-8")),))  # as an older version wrote it
    assert store.content("c", "s") == small and store.content("c", "l") == large


def test_a_state_of_the_last_schema_is_migrated_keeping_its_records(tmp_path: Path) -> None:
    """Step 5 drops the items' unused indexes: records and marks stay, and each run's query
    (a collection's items whole) has the primary key to go by."""
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.executescript(";".join(STEPS[:4]) + "; PRAGMA user_version = 4")
    db.execute("INSERT INTO items (collection, uid, filename, device_sig, href, etag, hash) "
               "VALUES ('c', 'u', 'u.vcf', '1:2:3', '/c/u.vcf', '\"e\"', 'h')")
    db.commit()
    db.close()
    store = StateStore(path)
    assert store.items("c") == {"u": Synced("u", "u.vcf", "1:2:3", "/c/u.vcf", '"e"', "h")}
    indexes = {row[0] for row in store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'items'")}
    assert not indexes & {"items_by_href", "items_by_file"}
    plan = " ".join(str(row) for row in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT uid FROM items WHERE collection = ?", ("c",)))
    assert "SEARCH items USING" in plan  # the primary key, not a scan of every collection
