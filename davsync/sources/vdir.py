"""vdir storage (https://vdirsyncer.pimutils.org/en/stable/vdir.html): one .vcf/.ics per item."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from pathlib import Path

from davsync.core.kinds import SUFFIX, Kind
from davsync.fsutil import TMP_PREFIX, fsync_dir, write_atomic
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing, StoreUnavailable

_SAFE = re.compile(r"[^A-Za-z0-9._@-]")
_STALE_TMP_SECONDS = 600  # a run killed mid-write leaves its temporary file behind


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
        self.skipped: dict[str, str] = {}  # name -> why the last scan left it out

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
        if "/" in name or "\\" in name or name in {"", ".", ".."} or "\0" in name:
            raise SourceError(f"refusing unsafe item name {name!r} in {self.path}")
        return self.path / name

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        path = self._file(name)
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
            if not (self.path / name).exists():
                return name, self._atomic_write(name, data, exclusive=True)
        raise SourceError(f"{self.path}: no free file name for UID {uid!r}")

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        self._check(name, expect_sig)
        return self._atomic_write(name, data, exclusive=False)

    def delete(self, name: str, expect_sig: str | None) -> None:
        self._check(name, expect_sig)
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SourceError(f"{self.path / name}: cannot delete: {exc.strerror}") from None
        self._dirty = True

    def _check(self, name: str, expect_sig: str | None) -> None:
        if expect_sig is None:
            return
        try:
            current = _sig(self._file(name).stat())
        except FileNotFoundError:
            current = None
        if current is not None and current != expect_sig:
            raise SourceError(f"{self.path / name} changed while syncing; left untouched")

    def _atomic_write(self, name: str, data: bytes, *, exclusive: bool) -> str:
        target = self._file(name)
        try:  # the folder is not created: one gone during the run is reported, not recreated
            write_atomic(target, data, replace=not exclusive, sync_dir=False)
        except FileExistsError:
            raise SourceError(f"{target} appeared while syncing; left untouched") from None
        except OSError as exc:
            raise SourceError(f"{target}: cannot write: {exc.strerror}") from None
        self._dirty = True
        return _sig(target.stat())

    def flush(self) -> None:
        if not self._dirty:
            return
        fsync_dir(self.path)
        self._dirty = False
