"""The credential database's persistence: the file (SQLite in WAL mode, mode 0600, shared by
the running server and the admin commands in other processes), its schema and migrations, the
one connection behind a lock, and the `generation` counter that login caches compare.

What the rows mean (accounts, devices, app passwords, blocks) is `store.CredentialStore`'s.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from davsync.errors import DavsyncError
from davsync.sqlite import Version, migrate, open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0), ('schema', 1);
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    iss TEXT NOT NULL,
    sub TEXT NOT NULL,
    email TEXT,
    created REAL NOT NULL,
    UNIQUE (iss, sub)
);
CREATE TABLE IF NOT EXISTS devices (
    username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT,
    created REAL NOT NULL,
    provisioned REAL NOT NULL,
    last_used REAL,
    revoked REAL,
    PRIMARY KEY (username, device_id)
);
"""
# Append only: step N turns schema N into N + 1. Step 1 -> 2: app passwords and blocks.
MIGRATIONS: tuple[str, ...] = (
    """
    ALTER TABLE devices ADD COLUMN kind TEXT NOT NULL DEFAULT 'device';
    ALTER TABLE devices ADD COLUMN blocked REAL;
    ALTER TABLE accounts ADD COLUMN blocked REAL
    """,
    # 2 -> 3: the daemon mode an admin set for an account (NULL: the device's own config).
    """
    ALTER TABLE accounts ADD COLUMN mode TEXT
    """,
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)
_SCHEMA_SLOT = Version(  # older than the use of user_version: the number lives in meta
    read="SELECT value FROM meta WHERE key = 'schema'",
    write="UPDATE meta SET value = {number} WHERE key = 'schema'",
)


class CredentialDB:
    """Thread-safe access to the credential database (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = open_db(path, timeout=10.0)
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(SCHEMA)
        migrate(db, MIGRATIONS, what="credential store", path=path, first=1,
                version=_SCHEMA_SLOT, error=DavsyncError)
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE), rolled back if the block raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        """One row, with the statement closed at once: an open SELECT would pin an old WAL
        snapshot, and this connection would miss revocations made by other processes."""
        with self._lock:
            cursor = self._db.execute(sql, args)
            try:
                row = cursor.fetchone()
            finally:
                cursor.close()
        return None if row is None else tuple(row)

    def all(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        """Every row of a query, read under the lock."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def generation(self) -> int:
        """Changes whenever a device password stops being valid; cheap enough for every request."""
        row = self.one("SELECT value FROM meta WHERE key = 'generation'")
        assert row is not None
        return int(row[0])


def bump_generation(db: sqlite3.Connection) -> None:
    """Inside a write transaction: every login cache drops what it holds."""
    db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
