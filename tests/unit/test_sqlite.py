"""The one SQLite open + migrate helper shared by the state, the backup index and the server."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from davsync.sqlite import Version, migrate, open_db

STEPS = ("CREATE TABLE a (x); CREATE TABLE b (y)", "ALTER TABLE a ADD COLUMN z")


def test_open_makes_private_files_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / "db.sqlite3"
    db = open_db(path)
    db.execute("CREATE TABLE t (x)")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(Path(f"{path}{suffix}").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    db.close()


def test_steps_are_applied_once_each_from_where_the_database_stands(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = open_db(path)
    migrate(db, STEPS[:1], what="test db", path=path)
    migrate(db, STEPS, what="test db", path=path)
    migrate(db, STEPS, what="test db", path=path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert [r[1] for r in db.execute("PRAGMA table_info(a)")] == ["x", "z"]


def test_a_newer_schema_names_the_file_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = open_db(path)
    db.execute("PRAGMA user_version = 5")
    with pytest.raises(ValueError) as info:
        migrate(db, STEPS, what="test db", path=path, error=ValueError)
    assert str(info.value) == (f"test db {path} has schema 5, newer than this davsync (2); "
                               "upgrade davsync")


def test_a_failing_step_leaves_the_database_at_the_step_before(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = open_db(path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE c (x)")
        raise sqlite3.OperationalError("boom")

    with pytest.raises(sqlite3.OperationalError):
        migrate(db, (STEPS[0], broken), what="test db", path=path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'c'").fetchall() == []


def test_the_version_may_live_in_a_table(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = open_db(path)
    db.executescript("CREATE TABLE meta (key, value); INSERT INTO meta VALUES ('schema', 1)")
    slot = Version(read="SELECT value FROM meta WHERE key = 'schema'",
                   write="UPDATE meta SET value = {number} WHERE key = 'schema'")
    migrate(db, ("CREATE TABLE t (x)",), what="test db", path=path, first=1, version=slot)
    assert db.execute("SELECT value FROM meta").fetchone()[0] == 2
