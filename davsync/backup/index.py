"""The local backup index: SQLite (WAL) in the state dir, separate from the sync state.

It remembers what the mirror holds, which single uploads were in flight (so a kill -9 neither
loses nor duplicates them) and the multipart uploads to resume. One connection shared by the
worker threads behind a lock: writes are tiny, and SQLite serialises them anyway.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from davsync.backup.model import Record
from davsync.sqlite import migrate, open_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    category TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER,
    sha256 TEXT NOT NULL, object TEXT NOT NULL, stored_size INTEGER NOT NULL,
    uploaded_at REAL NOT NULL, deleted_at REAL, offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (category, name));
CREATE TABLE IF NOT EXISTS garbage (object TEXT PRIMARY KEY, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending (object TEXT PRIMARY KEY, stored_size INTEGER NOT NULL,
    members TEXT);
CREATE TABLE IF NOT EXISTS multipart (
    object TEXT PRIMARY KEY, upload_id TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, salt BLOB, nonce_prefix BLOB,
    part_size INTEGER NOT NULL);
"""


def _add_pack_columns(db: sqlite3.Connection) -> None:
    """Columns added after the first schema (user_version 0 -> 1): packs of small files.

    A database made by this version already has them (from _SCHEMA); an older one lacks them.
    """
    for table, column, decl in (("files", "offset", "INTEGER NOT NULL DEFAULT 0"),
                                ("pending", "members", "TEXT")):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


_STEPS = (_add_pack_columns,)
_FIELDS = ("category, name, path, size, mtime_ns, inode, sha256, object, stored_size, "
           "uploaded_at, deleted_at, offset")


@dataclass(frozen=True)
class MultipartState:
    object: str
    upload_id: str
    size: int
    mtime_ns: int
    inode: int
    salt: bytes | None
    nonce_prefix: bytes | None
    part_size: int


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path)
        self._lock = threading.RLock()
        self._db.executescript(_SCHEMA)
        migrate(self._db, _STEPS, what="backup index", path=path)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # meta
    def get_meta(self, key: str) -> str | None:
        rows = self._exec("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._exec("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def bind(self, identity: str) -> bool:
        """Tie the index to one bucket/prefix/key; forget everything if it was another one.

        Returns True when the index was (re)started empty, so the caller imports the manifest.
        """
        with self.transaction():
            if self.get_meta("identity") == identity:
                return False
            for table in ("files", "garbage", "pending", "multipart", "meta"):
                self._exec(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            self.set_meta("identity", identity)
            return True

    # files
    def records(self) -> list[Record]:
        rows = self._exec(f"SELECT {_FIELDS} FROM files")  # noqa: S608
        return [Record(*row) for row in rows]  # type: ignore[arg-type]

    def put_record(self, rec: Record) -> None:
        self._exec(f"INSERT OR REPLACE INTO files ({_FIELDS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                   (rec.category, rec.name, rec.path, rec.size, rec.mtime_ns, rec.inode,
                    rec.sha256, rec.object, rec.stored_size, rec.uploaded_at, rec.deleted_at,
                    rec.offset))

    def drop_record(self, rec: Record) -> None:
        self._exec("DELETE FROM files WHERE category = ? AND name = ?", (rec.category, rec.name))

    # garbage: objects no record needs any more, deleted once the retention has passed
    def add_garbage(self, obj: str, since: float) -> None:
        self._exec("INSERT OR IGNORE INTO garbage VALUES (?, ?)", (obj, since))

    def garbage(self) -> list[tuple[str, float]]:
        return [(str(o), float(s)) for o, s in self._exec("SELECT object, since FROM garbage")]  # type: ignore[arg-type]

    def drop_garbage(self, obj: str) -> None:
        self._exec("DELETE FROM garbage WHERE object = ?", (obj,))

    def referenced(self) -> set[str]:
        return {str(r[0]) for r in self._exec("SELECT object FROM files")}

    # single uploads in flight
    def add_pending(self, obj: str, stored_size: int, members: list[Record] | None = None) -> None:
        """Record an upload about to start; a pack also lists the records it will hold."""
        packed = None if members is None else json.dumps([asdict(m) for m in members])
        self._exec("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", (obj, stored_size, packed))

    def pending_packs(self) -> list[tuple[str, int, list[Record]]]:
        rows = self._exec("SELECT object, stored_size, members FROM pending "
                          "WHERE members IS NOT NULL")
        return [(str(o), int(n), [Record(**m) for m in json.loads(str(j))])  # type: ignore[call-overload]
                for o, n, j in rows]

    def pending_size(self, obj: str) -> int | None:
        rows = self._exec("SELECT stored_size FROM pending WHERE object = ?", (obj,))
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload]

    def drop_pending(self, obj: str) -> None:
        self._exec("DELETE FROM pending WHERE object = ?", (obj,))

    # multipart uploads to resume
    def save_multipart(self, m: MultipartState) -> None:
        self._exec("INSERT OR REPLACE INTO multipart VALUES (?,?,?,?,?,?,?,?)",
                   (m.object, m.upload_id, m.size, m.mtime_ns, m.inode, m.salt,
                    m.nonce_prefix, m.part_size))

    def multipart(self, obj: str) -> MultipartState | None:
        rows = self._exec("SELECT * FROM multipart WHERE object = ?", (obj,))
        return MultipartState(*rows[0]) if rows else None  # type: ignore[arg-type]

    def multiparts(self) -> list[MultipartState]:
        return [MultipartState(*r) for r in self._exec("SELECT * FROM multipart")]  # type: ignore[arg-type]

    def drop_multipart(self, obj: str) -> None:
        self._exec("DELETE FROM multipart WHERE object = ?", (obj,))
