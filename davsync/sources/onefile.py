"""The base of every device store kept in one file (a .vcf/.ics, a JSON or CSV export).

Items are named by their UID and their sig is a hash of the item text the store gives for
them, so an item's sig stays the same when others in the file change.

Writes are batched: create, write and delete change a copy in memory, and `flush` writes the
whole file once, atomically (`fsutil.write_atomic`), keeping what the store does not own (a
subclass's `rest`, records it cannot convert). Rewriting the file per change would cost
O(n²) on a first sync of thousands. The sync calls `flush` before it records any outcome
(`sync.ledger`), and only once per run for such a store (`writes_whole`), so a kill at any
instant leaves either the old file and no records, or the new file and perhaps not yet its
records: the next run finds the same content on both sides and records it. A file changed
on disk while changes wait in memory is never overwritten: `flush` then drops them and raises
StoreUnavailable, so nothing of the run is recorded and the next run does it again.

A record that cannot be converted (or whose UID another record already has) is left out of
the items, named in `skipped` with what is wrong, and written back as it was read on every
rewrite. Its UID, where it names one, is the `skipped` key, so the sync never takes the item
synced under it for deleted; one it cannot name makes the scan `partial` (nothing missing is
taken for deleted). A file that cannot be parsed at all makes the whole store unavailable: an
empty answer would have every item deleted on the server.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from davsync.core.convert import ConvertError, Unconverted, record_name
from davsync.core.item import Item, parse_item, with_uid
from davsync.core.kinds import Kind
from davsync.core.vtext import ParseError
from davsync.fsutil import fsync_dir, write_atomic
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing, StoreUnavailable

# What a subclass's split gives and join takes per record: an item's text, or a record kept
# as it was read.
Entry = str | Unconverted

_FIX = ("not synced, and kept in the file as it is. Correct it there (or in the app that "
        "wrote the file) and sync again")


@dataclass(frozen=True, eq=False)
class Kept:
    """A record in its place in the file that is not synced; `entry` is what `join` gets."""

    entry: Entry


@dataclass
class Parsed:
    """A file's contents: item texts by UID, the file's order (a UID, or a record kept as it
    was read), what no item owns, and the stat of the file this copy was read from."""

    items: dict[str, str]
    rest: Any
    file_sig: str
    order: list[str | Kept] = field(default_factory=list)
    placed: set[str] = field(default_factory=set)  # the UIDs in `order`

    def place(self, uid: str) -> None:
        if uid not in self.placed:
            self.placed.add(uid)
            self.order.append(uid)

    def entries(self) -> list[Entry]:
        """What the file holds now, in order (a deleted item's place is skipped)."""
        return [self.items[slot] if isinstance(slot, str) else slot.entry
                for slot in self.order if not isinstance(slot, str) or slot in self.items]


def item_sig(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _file_sig(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


class OneFileSource:
    """A Source over one file; subclasses say how the file splits into items and back."""

    what = "file"  # how messages name the file, e.g. "contacts export"
    writes_whole = True  # every flush rewrites the whole file: flushed once per run

    def __init__(self, path: Path, kind: Kind) -> None:
        self.path = path
        self.kind: Kind = kind
        self.location = str(path)
        self.skipped: dict[str, str] = {}
        self.partial = False
        self._parsed: Parsed | None = None
        self._changed = False  # the copy in memory holds changes the file does not
        self._lost: str | None = None  # why a flush dropped changes: every later one fails

    # ---- the format (subclasses) ----

    def split(self, data: bytes) -> tuple[list[Entry], Any]:
        """The records of a file in order and its rest; ParseError when it is not of the
        format (a record that cannot be converted comes back as an `Unconverted`)."""
        raise NotImplementedError

    def join(self, entries: list[Entry], rest: Any) -> bytes:
        """The file holding `entries` and `rest`; ParseError when an item cannot be converted."""
        raise NotImplementedError

    def empty_rest(self) -> Any:
        return None

    # ---- the Source protocol ----

    def scan(self) -> dict[str, str]:
        if self._lost is not None:  # a run that failed its flush recorded none of its changes
            self._lost, self._changed, self._parsed = None, False, None
        self.flush()
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
        data = self._text(self._working(), name).encode("utf-8")
        if max_bytes is not None and len(data) > max_bytes:
            raise ItemTooLarge(f"{self.path} {name}: {len(data)} bytes, over {max_bytes}",
                               len(data))
        return data

    def create(self, uid: str, data: bytes) -> tuple[str, str]:
        parsed = self._working()
        if uid in parsed.items or uid in self.skipped:
            raise SourceError(f"{self.path}: an item with UID {uid!r} appeared while syncing; "
                              "left untouched")
        return uid, self._store(parsed, uid, data)

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        parsed = self._working()
        self._check(parsed, name, expect_sig)
        return self._store(parsed, name, data)

    def settled(self, sig: str) -> str:
        """An item's sig is its content's: known when it is written."""
        return sig

    def delete(self, name: str, expect_sig: str | None) -> None:
        parsed = self._working()
        self._check(parsed, name, expect_sig)
        if name not in parsed.items:
            return
        del parsed.items[name]
        self._changed = True

    def flush(self) -> dict[str, str]:
        """Write the changes held in memory, once, atomically; the file must be as it was
        read, or the changes are dropped (StoreUnavailable: nothing of them is recorded).
        Once changes were dropped, every flush until the next scan fails the same way, so
        that no outcome of them is ever recorded."""
        if self._lost is not None:
            raise StoreUnavailable(self._lost)
        if not self._changed:
            return {}
        parsed = self._parsed
        assert parsed is not None
        try:
            self._write(parsed)
        except StoreUnavailable as exc:
            self._lost = str(exc)
            raise
        finally:
            self._changed = False
            self._parsed = None  # read again after this, whatever happened
        return {}  # all or nothing: a failure raised above

    def start_flush(self) -> dict[str, str]:
        """`flush` (nothing to begin in the background). The sync does not call it for a
        store that `writes_whole`: it flushes such a store once, at the end of a run."""
        return self.flush()

    def settle(self) -> None:
        """Nothing runs in the background: `flush` wrote the file whole."""

    def _write(self, parsed: Parsed) -> None:
        if self._stat() != parsed.file_sig:
            raise StoreUnavailable(
                f"the device {self.what} changed on disk while syncing; this run's changes "
                "to it were not written, and the next sync makes them again")
        try:
            data = self.join(parsed.entries(), parsed.rest)
            write_atomic(self.path, data, replace=True, sync_dir=False)
            fsync_dir(self.path.parent)
        except (ParseError, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise StoreUnavailable(
                f"cannot write the device {self.what} ({why}); this run's changes to it "
                "were not written, and the next sync makes them again") from None

    # ---- reading ----

    def _working(self) -> Parsed:
        """The copy in memory while it holds changes (`flush` checks the file is unchanged),
        else the file as it is now."""
        if self._changed:
            assert self._parsed is not None
            return self._parsed
        return self._load()

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
            entries, rest = self.split(data)
        except ParseError as exc:
            raise StoreUnavailable(self._unreadable(str(exc))) from None
        parsed = Parsed({}, rest, file_sig)
        self.skipped, self.partial = {}, False
        for index, entry in enumerate(entries):
            if isinstance(entry, Unconverted):
                self._keep(parsed, entry, entry.error, entry.uid)
                continue
            try:
                uid = self._uid(entry)
            except ParseError as exc:
                self._keep(parsed, entry, ConvertError(record_name(index), str(exc)), None)
                continue
            if uid in parsed.items or uid in self.skipped:
                why = f"another record has the same UID {uid!r}"
                self._keep(parsed, entry, ConvertError(record_name(index), why), uid)
                continue
            parsed.items[uid] = entry
            parsed.place(uid)
        return parsed

    def _keep(self, parsed: Parsed, entry: Entry, error: ConvertError, uid: str | None) -> None:
        """Leave a record out of the items, in its place, and name it for the report: by its
        UID where it has one (the sync then keeps what is synced under it)."""
        parsed.order.append(Kept(entry))
        if uid is None:
            self.partial = True
        key = uid if uid is not None and uid not in self.skipped else f"record {error.record}"
        self.skipped[key] = f"record {error.record}: {error.why}; {_FIX}"

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
        """Refuse to change an item the user changed since `expect_sig`, or to touch a record
        kept as it was read (a write would duplicate its UID, a delete would lose it)."""
        if name not in parsed.items and name in self.skipped:
            raise SourceError(f"{self.path} {name}: changed on the server, but not here: "
                              f"{self.skipped[name]}")
        current = parsed.items.get(name)
        if expect_sig is not None and current is not None and item_sig(current) != expect_sig:
            raise SourceError(f"{self.path} {name} changed while syncing; left untouched")

    # ---- writing ----

    def _store(self, parsed: Parsed, name: str, data: bytes) -> str:
        """Put `data` under `name` in memory (in place, or last when new); the sig the scan
        after the flush gives."""
        text = self._own_text(name, data)
        parsed.items[name] = text
        parsed.place(name)
        self._changed = True
        return item_sig(text)

    def _own_text(self, uid: str, data: bytes) -> str:
        """`data` as this store will give it back after a rewrite, named `uid` (its UID set to
        `uid` if it differs): converted to the file's format and back, on its own, so an item
        the format cannot hold is refused now, alone, not when the file is written."""
        try:
            item: Item = parse_item(data, self.kind)
            text = (item if item.uid == uid else with_uid(item, uid)).text
            back, _ = self.split(self.join([text], self.empty_rest()))
        except ParseError as exc:
            raise SourceError(f"{self.path} {uid}: cannot store it: {exc}") from None
        if len(back) != 1 or isinstance(back[0], Unconverted):
            why = back[0].error if back and isinstance(back[0], Unconverted) else "not one item"
            raise SourceError(f"{self.path} {uid}: cannot store it: {why}")
        return back[0]
