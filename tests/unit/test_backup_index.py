"""The local index: its file mode, and the migration from the first schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from davsync.backup.index import Index
from davsync.backup.model import Record


def test_index_file_is_private_and_round_trips_records(tmp_path: Path) -> None:
    index = Index(tmp_path / "state" / "backup.sqlite")
    rec = Record("images", "P/a.jpg", "/p/a.jpg", 1, 2, 3, "h", "data/x", 53, 4.0, None, 7)
    index.put_record(rec)
    assert index.records() == [rec]
    index.close()
    assert (tmp_path / "state" / "backup.sqlite").stat().st_mode & 0o077 == 0


def test_first_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "backup.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE files (category TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
                size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER,
                sha256 TEXT NOT NULL, object TEXT NOT NULL, stored_size INTEGER NOT NULL,
                uploaded_at REAL NOT NULL, deleted_at REAL, PRIMARY KEY (category, name));
            CREATE TABLE pending (object TEXT PRIMARY KEY, stored_size INTEGER NOT NULL);
            INSERT INTO files VALUES ('images', 'P/a', '/p/a', 1, 2, 3, 'h', 'data/x', 53, 4.0,
                                      NULL);
        """)
    db.close()
    index = Index(path)
    assert index.records()[0].offset == 0
    index.add_pending("data/p", 10, [])
    assert index.pending_packs() == [("data/p", 10, [])]
    index.close()
