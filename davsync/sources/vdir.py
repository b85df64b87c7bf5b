"""vdir storage (https://vdirsyncer.pimutils.org/en/stable/vdir.html): one .vcf/.ics per item."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from davsync.core.kinds import SUFFIX, Kind
from davsync.fsutil import (
    TMP_PREFIX,
    HelperLost,
    fsync_dir,
    helper_ready,
    in_background,
    in_helper,
    place_staged,
    remove_later,
    restage_file,
    set_aside,
    stage_file,
    start_helper,
    sync_files,
)
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing, StoreUnavailable

_SAFE = re.compile(r"[^A-Za-z0-9._@-]")
_STALE_TMP_SECONDS = 600  # a run killed mid-write leaves its temporary file behind
_MAX_SPARE = 2000  # files out of use kept for reuse: two of the sync's record batches
# A batch that reaches this many files starts the helper process (`fsutil.in_helper`);
# once it is ready, every file staged is written, synced and named there, whose system
# calls then no longer take the interpreter lock from the applying thread (that was half of
# its time in 5 000 downloads). Fewer are written faster here than the helper starts (about
# 0.1 s of CPU): with it from 100 on, a change of 500 of 1 000 took 0.12 s longer. Once it
# is running, leaving it the whole of each later batch cut the time after the server's
# answer to a change of 5 000 of 10 000 from 1.02 s to 0.83 s (median of eight rounds).
_HELPER_FROM = 600
# The sig `write`/`create` return for an item whose file the flush writes: replaced by the
# file's own once it was written (`settled`). Never the sig of a file (those are numbers).
_UNWRITTEN = "unwritten:"
_UNWRITTEN_COUNT = itertools.count()


@dataclass(frozen=True)
class _Staged:
    """A create or write carried out at the next `flush`: its data sits in `tmp`, or, once
    the helper process is ready (`_deferring`), in `data` (`tmp` empty) until the flush
    writes it; its `sig` is then an `_UNWRITTEN` one."""

    name: str
    tmp: str
    sig: str
    replace: bool
    expect_sig: str | None  # write: what the file must still be just before it is replaced
    data: bytes | None = None


@dataclass(frozen=True)
class _Batch:
    """What one flush makes durable, taken from the applying thread's lists whole."""

    staged: list[_Staged]
    gone: list[str]  # deleted items under temporary names
    dirty: bool  # names changed (set aside) that need the directory synced
    spares: list[str] = field(default_factory=list)  # files out of use, for its unwritten data


@dataclass(frozen=True)
class _Placed:
    """A flush's outcome: names not placed -> why; the files it took out of use (replaced,
    deleted, spares it did not need); the error that stopped it, if any. Those files may be
    reused only when it did not stop: a crash could otherwise bring back an old name to a
    file reused. `sigs`: the `_UNWRITTEN` sig of each file it wrote -> that file's sig."""

    failed: dict[str, str]
    out_of_use: list[str]
    error: BaseException | None
    sigs: dict[str, str] = field(default_factory=dict)


@dataclass
class _Flushing:
    """A batch being placed by `start_flush`'s thread or the helper, and its names (looked
    up without waiting); `outcome` once the applying thread took it in."""

    done: Future[_Placed]
    by_name: dict[str, _Staged]
    batch: _Batch
    outcome: _Placed | None = None


def _discard(tmp: str) -> None:
    """Remove a staged file that will not be placed (none yet for unwritten data: "");
    one left behind is removed as stale by a later scan."""
    if not tmp:
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _sig(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _check_file(path: str, expect_sig: str | None) -> None:
    """The file at `path` must still be what the caller saw (or be gone)."""
    if expect_sig is None:
        return
    try:
        current = _sig(os.stat(path))
    except FileNotFoundError:
        return
    if current != expect_sig:
        raise SourceError(f"{path} changed while syncing; left untouched")


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
        self._flushing: _Flushing | None = None  # a batch `start_flush` is placing
        self._settled: dict[str, str] = {}  # `_UNWRITTEN` sig -> the written file's, this run

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
        self._wait_flushing()
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
        if staged is not None and staged.data is not None:
            if max_bytes is not None and len(staged.data) > max_bytes:
                raise ItemTooLarge(f"{self.path / name}: {len(staged.data)} bytes, over "
                                   f"{max_bytes}", len(staged.data))
            return staged.data
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
        if name in self._last or self._in_flight(name):
            return True
        if self._taken is None:
            return os.path.lexists(self._where(name))
        return name.casefold() in self._taken

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        """Stage the new content. Refused here when `expect_sig` is not the item's staged
        version, or not its file; in a batch the helper places, the file is checked only
        there, just before it is replaced (a stat per file less on the applying thread)."""
        staged = self._last_staged(name) is not None
        if staged or not self._deferring():
            self._check(name, expect_sig)
        expect = None if staged or expect_sig is None else self.settled(expect_sig)
        return self._stage(name, data, replace=True, expect_sig=expect)

    def _deferring(self) -> bool:
        """True when the next file staged waits for the flush to be written (`_stage`):
        once the helper is ready, which a batch of `_HELPER_FROM` files starts. Until then,
        as in a small run, it is written here: waiting for the helper's start would cost a
        500-item change more than it saves."""
        return helper_ready()

    def _waiting(self) -> int:
        """Files the next flush makes durable: staged, and deleted ones set aside."""
        return len(self._staged) + len(self._gone)

    def settled(self, sig: str) -> str:
        """The sig of the file written for an `_UNWRITTEN` one, once its flush wrote it."""
        return self._settled.get(sig, sig)

    def _last_staged(self, name: str) -> _Staged | None:
        """The name's staged version not placed yet, if any; a batch being placed in the
        background that holds the name is waited for first (its files change names)."""
        if self._in_flight(name):
            self._wait_flushing()
        return self._last.get(name)

    def delete(self, name: str, expect_sig: str | None) -> None:
        self._check(name, expect_sig)  # waits for a batch placing the name
        if self._last.pop(name, None) is not None:
            for staged in [s for s in self._staged if s.name == name]:
                self._staged.remove(staged)
                _discard(staged.tmp)  # nothing for unwritten data
        try:
            self._gone.append(set_aside(self._where(name)))  # removed at the next flush
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SourceError(f"{self.path / name}: cannot delete: {exc.strerror}") from None
        if self._taken is not None:
            self._taken.discard(name.casefold())
        self._dirty = True
        self._one_more()

    def _check(self, name: str, expect_sig: str | None) -> None:
        """The item must still be what the caller saw: its staged version if it has one."""
        if expect_sig is None:
            return
        staged = self._last_staged(name)
        if staged is None:
            _check_file(self._where(name), self.settled(expect_sig))
        elif staged.sig != expect_sig:
            raise SourceError(f"{self.path / name} changed while syncing; left untouched")

    def _stage(self, name: str, data: bytes, *, replace: bool, expect_sig: str | None) -> str:
        """Write the new content beside `name` now and give it the name at `flush`, once the
        data of every staged file is durable (one sync for all of them instead of one fsync
        each). The sig is final: placing keeps the inode, size and mtime. In a batch that the
        helper process places, the file is written there too: the sig is an `_UNWRITTEN` one
        until then."""
        target = self._where(name)
        if self._deferring():
            sig = f"{_UNWRITTEN}{next(_UNWRITTEN_COUNT)}"
            staged = self._last[name] = _Staged(name, "", sig, replace, expect_sig, data)
            self._staged.append(staged)
            return sig
        tmp, st = self._restage(data)
        if st is None:
            try:  # the folder is not created: one gone during the run is reported, not recreated
                tmp, st = stage_file(target, data)
            except OSError as exc:
                raise SourceError(f"{target}: cannot write: {exc.strerror}") from None
        sig = _sig(st)
        staged = self._last[name] = _Staged(name, tmp, sig, replace, expect_sig)
        self._staged.append(staged)
        self._one_more()
        return sig

    def _one_more(self) -> None:
        """One more file for the next flush: the batch that reaches `_HELPER_FROM` starts the
        helper process, which is then ready when the batch is placed."""
        if self._waiting() == _HELPER_FROM:
            start_helper()

    def _restage(self, data: bytes) -> tuple[str, os.stat_result | None]:
        """`data` in a file of this folder taken out of use (replaced or deleted by an earlier
        flush), if one can be reused: (its temporary name, stat); else ("", None)."""
        if not self._spare and self._flushing is not None and self._flushing.done.done():
            self._wait_flushing()  # its replaced files are free now
        while self._spare:
            spare = self._spare.pop()
            st = restage_file(spare, data)
            if st is not None:
                return spare, st
            self._remove([spare])
        return "", None

    def start_flush(self) -> dict[str, str]:
        """`flush` for the writes so far, new files on a thread of its own: the applying thread
        stages the next batch meanwhile (naming 1 000 new files and syncing their data is
        kernel time). Waits for the one under way first and returns what it could not
        complete (a background flush's error is raised here).

        A batch whose data waited (`_deferring`), or of `_HELPER_FROM` files or more once the
        helper is ready, goes to the helper process, which writes that data, syncs and names
        the files. Any other one that replaces or deletes
        files is placed at once, as `flush` does: on a thread, each of its files costs three
        system calls (check, keep the old file, replace), each taking the interpreter lock
        back from the applying thread (5 000 replaced downloads took 0.4-0.6 s longer)."""
        failed = self._finish_flushing()
        batch = self._to_place()
        if _for_helper(batch):
            placing = in_helper(partial(_place_batch, self.location, batch))
        elif batch.gone or any(item.replace for item in batch.staged):
            return failed | self._outcome(_place_batch(self.location, batch))
        elif batch.staged or batch.dirty:
            placing = in_background("davsync-flush", partial(_place_batch, self.location, batch))
        else:
            return failed
        self._flushing = _Flushing(placing, {item.name: item for item in batch.staged}, batch)
        return failed

    def flush(self) -> dict[str, str]:
        """Place the staged files: their data made durable first (one sync), then each name,
        then one directory fsync. A name taken meanwhile (create) or a file changed meanwhile
        (write) is left as it is and returned with why: its outcome must not be recorded.
        A batch `start_flush` left under way is finished first; its failures are returned
        too."""
        failed = self._finish_flushing()
        batch = self._to_place()
        if _for_helper(batch):
            placing = in_helper(partial(_place_batch, self.location, batch))
            return failed | self._outcome(_placed(placing, batch))
        return failed | self._outcome(_place_batch(self.location, batch))

    def _outcome(self, placed: _Placed) -> dict[str, str]:
        """A batch placed while the applying thread waited: taken in, its error raised."""
        self._absorb(placed)
        if placed.error is not None:
            raise placed.error
        return placed.failed

    def _to_place(self) -> _Batch:
        """`_take_batch` with as many spare files as it has unwritten data."""
        batch = self._take_batch()
        wanted = sum(1 for item in batch.staged if item.data is not None)
        if not wanted:
            return batch
        spares = self._spare[-wanted:]
        del self._spare[-wanted:]
        return replace(batch, spares=spares)

    def _take_batch(self) -> _Batch:
        """Everything staged, set aside or renamed since the last flush, handed over whole."""
        batch = _Batch(self._staged, self._gone, self._dirty)
        self._staged, self._last, self._gone, self._dirty = [], {}, [], False
        return batch

    def _absorb(self, placed: _Placed) -> None:
        """Take in a placed batch's sigs and files out of use (applying thread): each file
        takes a later staged file's data, or a thread of its own frees it (all of them when
        the batch stopped: their new names may not be durable)."""
        self._settled.update(placed.sigs)
        if placed.error is not None:
            self._remove(placed.out_of_use)
            self._dirty = True  # renames of this batch may not be durable: fsync next time
            return
        self._spare.extend(placed.out_of_use)
        self._remove(self._spare[_MAX_SPARE:])
        del self._spare[_MAX_SPARE:]

    def _wait_flushing(self) -> None:
        """Let the batch under way finish (its outcome is kept for the next flush): before
        anything touches a name it is placing, or when its freed files are wanted."""
        flushing = self._flushing
        if flushing is not None and flushing.outcome is None:
            flushing.outcome = _placed(flushing.done, flushing.batch)
            self._absorb(flushing.outcome)

    def _finish_flushing(self) -> dict[str, str]:
        """The failures of the batch under way, once it is done. Its error is raised, and
        what was staged after it is discarded: none of it may be recorded either."""
        self._wait_flushing()
        flushing, self._flushing = self._flushing, None
        if flushing is None or flushing.outcome is None:
            return {}
        if flushing.outcome.error is not None:
            later = self._take_batch()
            for item in later.staged:
                _discard(item.tmp)
            self._gone, self._dirty = later.gone, True  # deleted ones: freed by the next flush
            raise flushing.outcome.error
        return flushing.outcome.failed

    def _in_flight(self, name: str) -> bool:
        return self._flushing is not None and name in self._flushing.by_name

    def _remove(self, paths: list[str]) -> None:
        removing = remove_later(paths)
        if removing is not None:
            self._removing.append(removing)

    def settle(self) -> None:
        """Remove the files kept for reuse and wait until every file set aside so far is
        gone: a run then leaves no temporary name behind in the user's folder (most of the
        removing overlapped the run)."""
        self._wait_flushing()
        self._flushing = None  # a run that stopped before its last flush records nothing
        spare, self._spare = self._spare, []
        self._remove(spare)
        removing, self._removing = self._removing, []
        wait(removing)
        self._settled = {}  # the run recorded every sig it was given


def _for_helper(batch: _Batch) -> bool:
    """The batch holds data only the flush writes, or is large and the helper is ready."""
    return (any(item.data is not None for item in batch.staged)
            or (len(batch.staged) + len(batch.gone) >= _HELPER_FROM and helper_ready()))


def _placed(done: Future[_Placed], batch: _Batch) -> _Placed:
    """A batch's outcome, from whichever thread or process placed it; a helper process lost
    meanwhile stops the batch like a failed sync (which of its files got their names is not
    known: none is recorded, and the next run finds them again). The batch's temporary names
    are removed: a file that got its name no longer has one."""
    try:
        return done.result()
    except HelperLost as exc:
        for path in [*(item.tmp for item in batch.staged), *batch.spares]:
            _discard(path)
        return _Placed({}, batch.gone, StoreUnavailable(
            f"{exc} while placing written files; the files written since the last sync were "
            "not recorded and are written again next run"))


def _place_batch(folder: str, batch: _Batch) -> _Placed:
    """The work of a flush in `folder`, on whichever thread or process (the helper's: the
    batch and its outcome pickle): it touches nothing of the source object. An error comes
    back in the value (raised by the applying thread)."""
    failed: dict[str, str] = {}
    replaced: list[str] = []
    dirty = batch.dirty
    error: BaseException | None = None
    sigs: dict[str, str] = {}
    spares = list(batch.spares)
    staged = batch.staged
    try:
        staged = _write_unwritten(folder, staged, spares, sigs, failed)
        sync_files(Path(folder), [s.tmp for s in staged])
        for item in staged:
            why = _place(folder, item, replaced) if item.name not in failed else "not written"
            if why is not None:
                failed[item.name] = why
                _discard(item.tmp)
            else:
                dirty = True
        if dirty:
            fsync_dir(Path(folder))
    except BaseException as exc:
        for item in staged:  # the ones not placed yet
            _discard(item.tmp)
        error = exc
        if isinstance(exc, OSError):  # the sync of the data or of the folder
            error = StoreUnavailable(
                f"cannot sync the device folder to disk ({exc.strerror or exc}); the files "
                "written since its last sync were not recorded and are written again next "
                "run. Check the disk")
    return _Placed(failed, [*replaced, *batch.gone, *spares], error, sigs)


def _write_unwritten(folder: str, staged: list[_Staged], spares: list[str],
                     sigs: dict[str, str], failed: dict[str, str]) -> list[_Staged]:
    """Write each staged item's unwritten data into a spare file (taken from `spares`) or a
    new one, as `VdirSource._stage` does on the applying thread: the staged items as
    written, their sigs added to `sigs`; an item that could not be written goes to `failed`
    (left out, reported by the sync like one not placed)."""
    out: list[_Staged] = []
    for item in staged:
        if item.data is None:
            out.append(item)
            continue
        target = os.path.join(folder, item.name)
        st = None
        while spares and st is None:
            tmp = spares.pop()
            st = restage_file(tmp, item.data)
            if st is None:
                _discard(tmp)
        try:
            if st is None:
                tmp, st = stage_file(target, item.data)
        except OSError as exc:
            failed[item.name] = f"{target}: cannot write: {exc.strerror}"
            continue
        sigs[item.sig] = _sig(st)
        out.append(replace(item, tmp=tmp, sig=sigs[item.sig], data=None))
    return out


def _place(folder: str, item: _Staged, replaced: list[str]) -> str | None:
    """Give one staged file its name; why not, or None when it was placed. The file it
    replaced, kept under a temporary name, is added to `replaced`."""
    target = os.path.join(folder, item.name)
    try:
        _check_file(target, item.expect_sig)
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
