"""Opening davsync's SQLite databases and bringing their schema up to date, written once.

A leaf: imports nothing of davsync. The sync state, the backup index and the server's
credential store each own their schema steps; this module owns how they are applied.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Step = str | Callable[[sqlite3.Connection], None]
"""One schema step: SQL statements separated by `;`, or a function given the connection."""


def open_db(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection in WAL mode, shareable by threads, with transactions left to the caller.

    The folder is made 0700 and the database files 0600 before WAL mode is set: SQLite gives
    the -wal and -shm files the database's mode. (The files are never opened by us: closing
    any descriptor of a database drops this process's POSIX locks on it.)
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


@dataclass(frozen=True)
class Version:
    """Where a database keeps its schema number (the SQL to read it and to write it)."""

    read: str = "PRAGMA user_version"
    write: str = "PRAGMA user_version = {number}"


USER_VERSION = Version()


def migrate(
    db: sqlite3.Connection, steps: Sequence[Step], *, what: str, path: Path,
    first: int = 0, version: Version = USER_VERSION,
    error: Callable[[str], Exception] = RuntimeError,
) -> None:
    """Apply the steps the database lacks, one transaction each.

    `steps[0]` turns schema `first` into `first + 1`, and so on. The version is read inside
    the write lock: two processes may open the same old file at the same moment. A schema
    newer than the steps raises `error` naming the file (`what` says which database it is).
    """
    latest = first + len(steps)
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            number = int(db.execute(version.read).fetchall()[0][0])
            if number > latest:
                raise error(f"{what} {path} has schema {number}, newer than this davsync "
                            f"({latest}); upgrade davsync")
            if number == latest:
                db.execute("COMMIT")
                return
            _apply(db, steps[number - first])
            db.execute(version.write.format(number=number + 1))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _apply(db: sqlite3.Connection, step: Step) -> None:
    if callable(step):
        step(db)
        return
    for statement in step.split(";"):
        if statement.strip():
            db.execute(statement)
