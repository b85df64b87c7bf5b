"""The base of every device store kept in one file (a .vcf/.ics, a JSON or CSV export).

Items are named by their UID and their sig is a hash of the item text the store gives for
them, so an item's sig stays the same when others in the file change. Every create, write and
delete rewrites the whole file atomically (`fsutil.write_atomic`), keeping what the store does
not own (a subclass's `rest`). Before each change the file is read again if it changed on
disk, so a user's edit since the last scan is seen: a changed item is refused, as a vdir does.

A file that cannot be parsed, or a record in it that cannot be converted, makes the whole
store unavailable: an empty answer would have every item deleted on the server, and a
rewrite would lose what could not be read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from davsync.core.item import Item, parse_item, with_uid
from davsync.core.kinds import Kind
from davsync.core.vtext import ParseError
from davsync.fsutil import fsync_dir, write_atomic
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing, StoreUnavailable


@dataclass
class Parsed:
    """A file's contents: item texts by UID in file order, and what no item owns."""

    items: dict[str, str]
    rest: Any
    file_sig: str


def item_sig(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _file_sig(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


class OneFileSource:
    """A Source over one file; subclasses say how the file splits into items and back."""

    what = "file"  # how messages name the file, e.g. "contacts export"

    def __init__(self, path: Path, kind: Kind) -> None:
        self.path = path
        self.kind: Kind = kind
        self.location = str(path)
        self.skipped: dict[str, str] = {}
        self._parsed: Parsed | None = None
        self._dirty = False

    # ---- the format (subclasses) ----

    def split(self, data: bytes) -> tuple[list[str], Any]:
        """The item texts of a file and its rest; ParseError when it is not of the format."""
        raise NotImplementedError

    def join(self, texts: list[str], rest: Any) -> bytes:
        """The file holding `texts` and `rest`; ParseError when an item cannot be converted."""
        raise NotImplementedError

    def empty_rest(self) -> Any:
        return None

    # ---- the Source protocol ----

    def scan(self) -> dict[str, str]:
        self.skipped = {}
        return {uid: item_sig(text) for uid, text in self._load().items.items()}

    def create_store(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, self.join([], self.empty_rest()), replace=False)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the device {self.what} ({exc.strerror}); check the path in "
                "[device] and its permissions") from None

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        data = self._text(self._load(), name).encode("utf-8")
        if max_bytes is not None and len(data) > max_bytes:
            raise ItemTooLarge(f"{self.path} {name}: {len(data)} bytes, over {max_bytes}",
                               len(data))
        return data

    def create(self, uid: str, data: bytes) -> tuple[str, str]:
        parsed = self._load()
        if uid in parsed.items:
            raise SourceError(f"{self.path}: an item with UID {uid!r} appeared while syncing; "
                              "left untouched")
        return uid, self._store(parsed, uid, self._own_text(uid, data))

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        parsed = self._load()
        self._check(parsed, name, expect_sig)
        return self._store(parsed, name, self._own_text(name, data))

    def delete(self, name: str, expect_sig: str | None) -> None:
        parsed = self._load()
        if name not in parsed.items:
            return
        self._check(parsed, name, expect_sig)
        items = {uid: text for uid, text in parsed.items.items() if uid != name}
        self._save(parsed, items)

    def flush(self) -> dict[str, str]:
        if self._dirty:
            fsync_dir(self.path.parent)
            self._dirty = False
        return {}

    # ---- reading ----

    def _load(self) -> Parsed:
        """The file's contents, parsed again only when its stat changed."""
        sig = self._stat()
        if self._parsed is None or self._parsed.file_sig != sig:
            self._parsed = self._parse(self._read_file(), sig)
        return self._parsed

    def _stat(self) -> str:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreMissing(
                f"the device {self.what} is missing (moved, renamed, or on a disk that is not "
                "mounted?); nothing was synced or deleted for this collection. Put it back, or "
                "create it empty to have the server's items deleted too (that run asks for "
                "--allow-mass-delete)") from None
        except OSError as exc:
            raise StoreUnavailable(self._unreadable(exc.strerror or str(exc))) from None
        if not stat.S_ISREG(st.st_mode):
            raise StoreUnavailable(
                f"is not a file; nothing was synced or deleted for this collection. Point "
                f"[device] in the config at the {self.what}")
        return _file_sig(st)

    def _read_file(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise StoreUnavailable(self._unreadable(exc.strerror or str(exc))) from None

    def _unreadable(self, why: str) -> str:
        return (f"cannot read the device {self.what} ({why}); nothing was synced or deleted "
                "for this collection. Fix or restore the file and sync again")

    def _parse(self, data: bytes, file_sig: str) -> Parsed:
        try:
            texts, rest = self.split(data)
            items: dict[str, str] = {}
            for text in texts:
                uid = self._uid(text)
                if uid in items:
                    raise ParseError(f"two items have the UID {uid!r}")
                items[uid] = text
        except ParseError as exc:
            raise StoreUnavailable(self._unreadable(str(exc))) from None
        return Parsed(items, rest, file_sig)

    def _uid(self, text: str) -> str:
        uid = parse_item(text, self.kind).uid
        if not uid:
            raise ParseError("an item has no UID")
        return uid

    def _text(self, parsed: Parsed, name: str) -> str:
        try:
            return parsed.items[name]
        except KeyError:
            raise SourceError(f"{self.path}: no item with UID {name!r}") from None

    def _check(self, parsed: Parsed, name: str, expect_sig: str | None) -> None:
        current = parsed.items.get(name)
        if expect_sig is not None and current is not None and item_sig(current) != expect_sig:
            raise SourceError(f"{self.path} {name} changed while syncing; left untouched")

    # ---- writing ----

    def _own_text(self, uid: str, data: bytes) -> str:
        """`data` as an item of this store named `uid` (its UID set to `uid` if it differs)."""
        try:
            item: Item = parse_item(data, self.kind)
        except ParseError as exc:
            raise SourceError(f"{self.path} {uid}: cannot store it: {exc}") from None
        return (item if item.uid == uid else with_uid(item, uid)).text

    def _store(self, parsed: Parsed, name: str, text: str) -> str:
        """Put `text` under `name` (in place, or last when new); the sig the next scan gives."""
        items = dict(parsed.items)
        items[name] = text
        after = self._save(parsed, items)
        if name not in after.items:
            raise SourceError(f"{self.path} {name}: written, but not found when read back")
        return item_sig(after.items[name])

    def _save(self, parsed: Parsed, items: dict[str, str]) -> Parsed:
        try:
            data = self.join(list(items.values()), parsed.rest)
        except ParseError as exc:
            raise SourceError(f"{self.path}: cannot write: {exc}") from None
        try:
            write_atomic(self.path, data, replace=True, sync_dir=False)
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot write: {exc.strerror}") from None
        self._dirty = True
        self._parsed = self._parse(data, self._stat())
        return self._parsed
