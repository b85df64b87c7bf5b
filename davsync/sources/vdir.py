"""vdir storage (https://vdirsyncer.pimutils.org/en/stable/vdir.html): one .vcf/.ics per item."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path

from davsync.core.kinds import SUFFIX, Kind
from davsync.fsutil import (
    TMP_PREFIX,
    fsync_dir,
    place_staged,
    remove_later,
    restage_file,
    set_aside,
    stage_file,
    sync_files,
)
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing, StoreUnavailable

_SAFE = re.compile(r"[^A-Za-z0-9._@-]")
_STALE_TMP_SECONDS = 600  # a run killed mid-write leaves its temporary file behind
_MAX_SPARE = 2000  # files out of use kept for reuse: two of the sync's record batches


@dataclass(frozen=True)
class _Staged:
    """A create or write carried out at the next `flush`: its data sits in `tmp`."""

    name: str
    tmp: str
    sig: str
    replace: bool
    expect_sig: str | None  # write: what the file must still be just before it is replaced


def _discard(tmp: str) -> None:
    """Remove a staged file that will not be placed; one left behind is removed as stale by a
    later scan."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _sig(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    return "a special file"


class VdirSource:
    partial = False  # every left-out entry is named by its file name
    writes_whole = False

    def __init__(self, path: Path, kind: Kind) -> None:
        self.path = path
        self.kind: Kind = kind
        self.suffix = SUFFIX[kind]
        self.location = str(path)
        self._dirty = False  # names changed since the last directory fsync
        self._staged: list[_Staged] = []  # creates and writes waiting for `flush`, in order
        self._last: dict[str, _Staged] = {}  # name -> its latest entry in `_staged`
        self.skipped: dict[str, str] = {}  # name -> why the last scan left it out
        # Names (casefolded, for case-insensitive file systems) the last scan saw or this run
        # gave out: a new item's name is chosen without asking the file system about each
        # one; one taken meanwhile by someone else is refused when it is placed. None before
        # the first scan.
        self._taken: set[str] | None = None
        self._gone: list[str] = []  # deleted items under temporary names, until `flush`
        self._spare: list[str] = []  # files out of use (durably), for `_restage`
        self._removing: list[Future[None]] = []  # freeing files out of use, until `settle`

    def scan(self) -> dict[str, str]:
        try:
            return self._scan()
        except FileNotFoundError:
            raise StoreMissing(
                "the device folder is missing (moved, renamed, or on a disk that is not "
                "mounted?); nothing was synced or deleted for this collection. Put it back, "
                "or create it empty to have the server's items deleted too (that run asks for "
                "--allow-mass-delete)"
            ) from None
        except NotADirectoryError:
            raise StoreUnavailable(
                "is not a folder; nothing was synced or deleted for this collection. Point "
                "[device] in the config at the folder of .vcf/.ics files"
            ) from None
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read the device folder ({exc.strerror}); nothing was synced or "
                "deleted for this collection. Check the folder and its permissions"
            ) from None

    def create_store(self) -> None:
        if not self.path.is_dir():
            self._taken = set()  # a new folder: no name is taken
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the device folder ({exc.strerror}); check the path in "
                "[device] and its permissions"
            ) from None

    def _scan(self) -> dict[str, str]:
        """Every item file with its sig; item-named entries that are not regular files (a
        symbolic link, a folder, a fifo) are left out and listed in `skipped`."""
        self.skipped = {}
        out: dict[str, str] = {}
        with os.scandir(self.path) as entries:
            for entry in entries:
                self._scan_entry(entry, out)
        out.update((staged.name, staged.sig) for staged in self._staged)  # not yet flushed
        self._taken = {name.casefold() for name in (*out, *self.skipped)}
        return out

    def _scan_entry(self, entry: os.DirEntry[str], out: dict[str, str]) -> None:
        if entry.name.startswith(TMP_PREFIX):
            self._remove_if_stale(entry)
            return
        if not entry.name.endswith(self.suffix) or entry.name.startswith("."):
            return
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # deleted while we looked
            return
        if stat.S_ISREG(st.st_mode):
            out[entry.name] = _sig(st)
        else:
            self.skipped[entry.name] = f"{_what(st.st_mode)}, not a regular file: skipped"

    @staticmethod
    def _remove_if_stale(entry: os.DirEntry[str]) -> None:
        try:
            if time.time() - entry.stat(follow_symlinks=False).st_mtime > _STALE_TMP_SECONDS:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass

    def _file(self, name: str) -> Path:
        return Path(self._where(name))

    def _where(self, name: str) -> str:
        """`_file` as a string: what the per-item paths (staging, placing) use."""
        if "/" in name or "\\" in name or name in {"", ".", ".."} or "\0" in name:
            raise SourceError(f"refusing unsafe item name {name!r} in {self.path}")
        return os.path.join(self.location, name)

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The item's bytes; its staged version if it has one (written, not yet flushed)."""
        staged = self._last_staged(name)
        path = Path(staged.tmp) if staged else self._file(name)
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise ItemTooLarge(f"{path}: {size} bytes, over {max_bytes}", size)
                return fh.read()
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror}") from None

    def name_for(self, uid: str) -> str:
        stem = uid if not _SAFE.search(uid) and 0 < len(uid) <= 120 else ""
        if not stem or stem.startswith("."):
            stem = hashlib.sha1(uid.encode("utf-8"), usedforsecurity=False).hexdigest()
        return stem + self.suffix

    def create(self, uid: str, data: bytes) -> tuple[str, str]:
        base = self.name_for(uid)
        for attempt in range(100):
            name = base if attempt == 0 else f"{base[: -len(self.suffix)]}-{attempt}{self.suffix}"
            if not self._is_taken(name):
                sig = self._stage(name, data, replace=False, expect_sig=None)
                if self._taken is not None:
                    self._taken.add(name.casefold())
                return name, sig
        raise SourceError(f"{self.path}: no free file name for UID {uid!r}")

    def _is_taken(self, name: str) -> bool:
        if name in self._last:
            return True
        if self._taken is None:
            return os.path.lexists(self._where(name))
        return name.casefold() in self._taken

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        self._check(name, expect_sig)
        staged = self._last_staged(name) is not None
        return self._stage(name, data, replace=True, expect_sig=None if staged else expect_sig)

    def _last_staged(self, name: str) -> _Staged | None:
        return self._last.get(name)

    def delete(self, name: str, expect_sig: str | None) -> None:
        self._check(name, expect_sig)
        if self._last.pop(name, None) is not None:
            for staged in [s for s in self._staged if s.name == name]:
                self._staged.remove(staged)
                _discard(staged.tmp)
        try:
            self._gone.append(set_aside(self._where(name)))  # removed at the next flush
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SourceError(f"{self.path / name}: cannot delete: {exc.strerror}") from None
        if self._taken is not None:
            self._taken.discard(name.casefold())
        self._dirty = True

    def _check(self, name: str, expect_sig: str | None) -> None:
        """The item must still be what the caller saw: its staged version if it has one."""
        if expect_sig is None:
            return
        staged = self._last_staged(name)
        try:
            current = staged.sig if staged else _sig(os.stat(self._where(name)))
        except FileNotFoundError:
            current = None
        if current is not None and current != expect_sig:
            raise SourceError(f"{self.path / name} changed while syncing; left untouched")

    def _stage(self, name: str, data: bytes, *, replace: bool, expect_sig: str | None) -> str:
        """Write the new content beside `name` now and give it the name at `flush`, once the
        data of every staged file is durable (one sync for all of them instead of one fsync
        each). The sig is final: placing keeps the inode, size and mtime."""
        target = self._where(name)
        tmp, st = self._restage(data)
        if st is None:
            try:  # the folder is not created: one gone during the run is reported, not recreated
                tmp, st = stage_file(target, data)
            except OSError as exc:
                raise SourceError(f"{target}: cannot write: {exc.strerror}") from None
        sig = _sig(st)
        staged = self._last[name] = _Staged(name, tmp, sig, replace, expect_sig)
        self._staged.append(staged)
        return sig

    def _restage(self, data: bytes) -> tuple[str, os.stat_result | None]:
        """`data` in a file of this folder taken out of use (replaced or deleted by an earlier
        flush), if one can be reused: (its temporary name, stat); else ("", None)."""
        while self._spare:
            spare = self._spare.pop()
            st = restage_file(spare, data)
            if st is not None:
                return spare, st
            self._remove([spare])
        return "", None

    def flush(self) -> dict[str, str]:
        """Place the staged files: their data made durable first (one sync), then each name,
        then one directory fsync. A name taken meanwhile (create) or a file changed meanwhile
        (write) is left as it is and returned with why: its outcome must not be recorded."""
        staged, self._staged = self._staged, []
        self._last = {}
        failed: dict[str, str] = {}
        replaced: list[str] = []
        placed = False
        try:
            sync_files(self.path, [s.tmp for s in staged])
            for item in staged:
                why = self._place(item, replaced) if item.name not in failed else "not written"
                if why is not None:
                    failed[item.name] = why
                    _discard(item.tmp)
                else:
                    self._dirty = True
            if self._dirty:
                fsync_dir(self.path)
                self._dirty = False
            placed = True
        except BaseException:
            for item in staged:  # the ones not placed yet
                _discard(item.tmp)
            raise
        finally:
            # The old versions and the deleted files, under temporary names: each takes a
            # later staged file's data, or a thread of its own frees it. Only once the names
            # are durable: before that a crash could bring back an old name to a file reused.
            out_of_use, self._gone = [*replaced, *self._gone], []
            if placed:
                self._spare.extend(out_of_use)
                out_of_use = self._spare[_MAX_SPARE:]
                del self._spare[_MAX_SPARE:]
            self._remove(out_of_use)
        return failed

    def _remove(self, paths: list[str]) -> None:
        removing = remove_later(paths)
        if removing is not None:
            self._removing.append(removing)

    def settle(self) -> None:
        """Remove the files kept for reuse and wait until every file set aside so far is
        gone: a run then leaves no temporary name behind in the user's folder (most of the
        removing overlapped the run)."""
        spare, self._spare = self._spare, []
        self._remove(spare)
        removing, self._removing = self._removing, []
        wait(removing)

    def _place(self, item: _Staged, replaced: list[str]) -> str | None:
        """Give one staged file its name; why not, or None when it was placed. The file it
        replaced, kept under a temporary name, is added to `replaced`."""
        target = self._where(item.name)
        try:
            self._check(item.name, item.expect_sig)
            aside = place_staged(item.tmp, target, replace=item.replace)
            if aside is not None:
                replaced.append(aside)
        except SourceError as exc:
            return str(exc)
        except FileExistsError:
            return f"{target} appeared while syncing; left untouched"
        except OSError as exc:
            return f"{target}: cannot write: {exc.strerror}"
        return None
