"""SQLite state in WAL mode: collections (URL, ctag, sync token) and synced items.

Every item outcome is committed on its own as soon as it happens, and the collection's token
only after the whole run applied what it listed: a kill -9 at any instant leaves a state from
which the next run converges without losing or duplicating anything.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from davsync.core.synced import Synced
from davsync.errors import DavsyncError
from davsync.sqlite import migrate, open_db
from davsync.state.migrations import STEPS

# How long a getlastmodified mark (`dav.probe`) alone may say "unchanged": older, the probe asks
# for getctag beside it again, getctag decides, and a settled time is dated anew. It bounds how
# late an edit made behind the server's back with an old file time is seen.
MODIFIED_MARK_SECONDS = 3600


class StateError(DavsyncError):
    """The state database is unreadable or from a newer davsync."""


@dataclass(frozen=True)
class CollectionState:
    name: str
    kind: str
    url: str | None
    ctag: str | None
    sync_token: str | None
    last_sync: str | None
    last_result: dict[str, object] | None
    modified: str | None = None  # the getlastmodified mark, while younger than its lifetime


@dataclass(frozen=True)
class CollectionMeta:
    """Where a collection lives on the device (`folder`: its folder's name under the
    `collections = ...` parent, or the whole path of a store of the single form,
    `sync.layout`), and its display name and colour as both sides agreed at the last sync."""

    folder: str
    displayname: str | None = None
    color: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A device item's content the server refused, and what it said."""

    hash: str
    reason: str


_UPSERT = (
    "INSERT INTO items (collection, uid, filename, device_sig, href, etag, hash, content) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(collection, uid) DO UPDATE SET "
    "filename = excluded.filename, device_sig = excluded.device_sig, "
    "href = excluded.href, etag = excluded.etag, hash = excluded.hash, "
    "content = COALESCE(excluded.content, items.content)"
)


# Texts up to this many characters are stored as they are (SQLite TEXT); longer ones (a contact
# with a photo) as zlib data (a BLOB). Compressing a 400-byte vCard saves about 80 bytes and
# cost 25 us, more than the rest of recording it (0.25 s of a 10 000-contact pairing).
_PLAIN_UP_TO = 2048


def _pack(text: str) -> str | bytes:
    return text if len(text) <= _PLAIN_UP_TO else _compress(text)


def _unpack(stored: str | bytes) -> str:
    """The text `_pack` stored; a BLOB is zlib data (every text before TEXT was used too)."""
    return stored if isinstance(stored, str) else zlib.decompress(stored).decode("utf-8")


def _compress(text: str) -> bytes:
    """zlib data that `zlib.decompress` reads, with a window no larger than the text: the
    default 32 KiB window (and 256 KiB of state) cost four times the compression itself for
    a 400-byte vCard, for the same output."""
    data = text.encode("utf-8")
    wbits = min(15, max(9, len(data).bit_length() + 1))
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits, max(1, min(8, wbits - 7)))
    return packer.compress(data) + packer.flush()


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = open_db(path)
            migrate(self.db, STEPS, what="state database", path=path, error=StateError)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state database {path} is unusable: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # collections -----------------------------------------------------------------------

    def collection(self, name: str) -> CollectionState | None:
        row = self.db.execute(
            "SELECT name, kind, url, ctag, sync_token, last_sync, last_result, modified, "
            "modified_at FROM collections WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return None
        result = json.loads(row[6]) if row[6] else None
        name, kind, url, ctag, token, last_sync = row[:6]
        modified, modified_at = row[7:9]
        if modified_at is None or not 0 <= time.time() - modified_at < MODIFIED_MARK_SECONDS:
            modified = None  # too old to trust alone (or from a clock that went back)
        return CollectionState(name, kind, url, ctag, token, last_sync, result, modified)

    def collections(self) -> list[CollectionState]:
        names = [r[0] for r in self.db.execute("SELECT name FROM collections ORDER BY name")]
        return [c for n in names if (c := self.collection(n)) is not None]

    def save_collection(self, name: str, kind: str, url: str | None) -> None:
        self.db.execute(
            "INSERT INTO collections (name, kind, url) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, url = excluded.url",
            (name, kind, url),
        )

    def save_marks(self, name: str, ctag: str | None, sync_token: str | None,
                   modified: str | None = None) -> None:
        """The marks of a complete read; `modified` (a settled getlastmodified) is dated now."""
        self.db.execute(
            "UPDATE collections SET ctag = ?, sync_token = ?, modified = ?, modified_at = ? "
            "WHERE name = ?",
            (ctag, sync_token, modified, time.time() if modified else None, name),
        )

    def save_modified(self, name: str, modified: str) -> None:
        """A settled getlastmodified read while the other marks still hold (the probe found
        nothing changed by them): the next probe may ask for it alone."""
        self.db.execute("UPDATE collections SET modified = ?, modified_at = ? WHERE name = ?",
                        (modified, time.time(), name))

    def save_result(self, name: str, when: str, result: dict[str, object]) -> None:
        self.db.execute(
            "UPDATE collections SET last_sync = ?, last_result = ? WHERE name = ?",
            (when, json.dumps(result), name),
        )

    def rename_collection(self, old: str, new: str) -> None:
        """Move a collection's marks, items and pending hrefs to the name `new`, at once.

        The old name may hold a secret (a password from a URL, before davsync removed it):
        its bytes are overwritten in the file and the write-ahead log is emptied."""
        self.db.execute("PRAGMA secure_delete = ON")
        try:
            with self.transaction():
                for table, column in (
                    ("collections", "name"), ("items", "collection"), ("pending", "collection"),
                    ("collection_meta", "collection"),
                ):
                    self.db.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {column} = ?",  # noqa: S608
                        (new, old),
                    )
        finally:
            self.db.execute("PRAGMA secure_delete = OFF")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def meta(self, collection: str) -> CollectionMeta | None:
        """The device folder and last synced display name and colour of a collection; None
        for one never synced (or last synced by a davsync that did not record it)."""
        row = self.db.execute(
            "SELECT folder, displayname, color FROM collection_meta WHERE collection = ?",
            (collection,),
        ).fetchone()
        return None if row is None else CollectionMeta(*row)

    def save_meta(self, collection: str, meta: CollectionMeta) -> None:
        self.db.execute(
            "INSERT INTO collection_meta (collection, folder, displayname, color) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(collection) DO UPDATE SET folder = excluded.folder, "
            "displayname = excluded.displayname, color = excluded.color",
            (collection, meta.folder, meta.displayname, meta.color),
        )

    # items -----------------------------------------------------------------------------

    def items(self, collection: str) -> dict[str, Synced]:
        rows = self.db.execute(
            "SELECT uid, filename, device_sig, href, etag, hash FROM items WHERE collection = ?",
            (collection,),
        )
        return {row[0]: Synced(*row) for row in rows}

    def content(self, collection: str, uid: str) -> str | None:
        """The last synced text of an item: the base for a later field-by-field merge."""
        row = self.db.execute(
            "SELECT content FROM items WHERE collection = ? AND uid = ?", (collection, uid)
        ).fetchone()
        return _unpack(row[0]) if row and row[0] else None

    def record(self, collection: str, synced: Synced, text: str | None) -> None:
        self.upsert(collection, [(synced, text)])

    def record_many(self, collection: str, rows: Iterable[tuple[Synced, str | None]]) -> None:
        with self.transaction():
            self.upsert(collection, rows)

    def upsert(self, collection: str, rows: Iterable[tuple[Synced, str | None]]) -> None:
        """Record the rows with one statement (a pairing records thousands), inside the
        caller's transaction."""
        self.db.executemany(_UPSERT, (
            (collection, synced.uid, synced.filename, synced.device_sig, synced.href,
             synced.etag, synced.hash, None if text is None else _pack(text))
            for synced, text in rows
        ))

    def forget(self, collection: str, uid: str) -> None:
        self.db.execute("DELETE FROM items WHERE collection = ? AND uid = ?", (collection, uid))

    def forget_collection(self, collection: str) -> None:
        with self.transaction():
            for table in ("items", "pending", "refused", "collection_meta"):
                self.db.execute(f"DELETE FROM {table} WHERE collection = ?", (collection,))  # noqa: S608
            self.db.execute("DELETE FROM collections WHERE name = ?", (collection,))

    def reset_collection(self, collection: str) -> None:
        """Forget what was synced (items, marks, pending and refused hrefs) but keep the
        collection and its device folder: a collection that vanished from the server and
        comes back is then merged afresh, never read as "every item deleted"."""
        with self.transaction():
            for table in ("items", "pending", "refused"):
                self.db.execute(f"DELETE FROM {table} WHERE collection = ?", (collection,))  # noqa: S608
            self.db.execute("UPDATE collections SET ctag = NULL, sync_token = NULL, "
                            "modified = NULL, modified_at = NULL WHERE name = ?", (collection,))

    # pending server hrefs ----------------------------------------------------------------

    def pending(self, collection: str) -> set[str]:
        rows = self.db.execute("SELECT href FROM pending WHERE collection = ?", (collection,))
        return {row[0] for row in rows}

    def set_pending(self, collection: str, hrefs: Iterable[str]) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM pending WHERE collection = ?", (collection,))
            self.db.executemany(
                "INSERT OR IGNORE INTO pending (collection, href) VALUES (?, ?)",
                [(collection, h) for h in hrefs],
            )

    # device items the server refused ----------------------------------------------------

    def refused(self, collection: str) -> dict[str, Refusal]:
        """uid -> the content (hash) the server refused, and its reason."""
        rows = self.db.execute(
            "SELECT uid, hash, reason FROM refused WHERE collection = ?", (collection,)
        )
        return {row[0]: Refusal(row[1], row[2]) for row in rows}

    def refuse(self, collection: str, uid: str, refusal: Refusal) -> None:
        self.db.execute(
            "INSERT INTO refused (collection, uid, hash, reason) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(collection, uid) DO UPDATE SET hash = excluded.hash, "
            "reason = excluded.reason",
            (collection, uid, refusal.hash, refusal.reason),
        )

    def clear_refused(self, collection: str, uids: Iterable[str]) -> None:
        self.db.executemany(
            "DELETE FROM refused WHERE collection = ? AND uid = ?",
            [(collection, uid) for uid in uids],
        )
