"""`davsync restore`: the manifest's live files and the snapshots, written below one folder.

Every file is verified (AEAD per segment in client mode; size and SHA-256 against the manifest
in both modes) into a temporary file that replaces the target only when complete, so a failed
file leaves nothing half-written. Names that would leave the folder are refused, and the
reasons are collected per file while the rest carries on.

A file already in the folder is never lost: one identical to the backup's is left alone (not
downloaded, not rewritten); one that differs (the user changed it since an earlier restore) is
kept and reported as skipped unless `overwrite` is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from davsync.backup.format import DecryptError, Decryptor
from davsync.backup.keys import KdfParams
from davsync.backup.manifest import Manifest, Snapshot
from davsync.backup.mirror import iter_live, read_manifest
from davsync.backup.model import Record
from davsync.backup.progress import Progress
from davsync.backup.repo import NoBackup, Repository, StoreWrapper, open_repository
from davsync.backup.run import BackupCancelled
from davsync.backup.scan import root_labels
from davsync.backup.settings import ALL_CATEGORIES, CATEGORIES, BackupConfig
from davsync.backup.snapshot import count_items, tar_digest
from davsync.backup.stats import COMPLETED, IN_PROGRESS, CategoryStats, Stats, StatsFile
from davsync.backup.store import StoreError, StoreFactory
from davsync.fsutil import atomic_file

log = logging.getLogger(__name__)
CHUNK = 1 << 20
RANGE_MAX = 2 << 20


class UnsafeName(ValueError):
    """A name that would put a file outside the restore folder."""


def safe_parts(name: str) -> list[str]:
    """The path components of a stored name, or UnsafeName saying why it is refused (pure).

    POSIX rules: `/` is the only separator, so a backslash or a colon is an ordinary character.
    """
    if not name or "\0" in name:
        raise UnsafeName("empty name or NUL byte")
    if name.startswith("/"):
        raise UnsafeName("absolute path")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeName("'..', '.' or empty path component")
    return parts


def prepare_target(base: Path, parts: list[str]) -> Path:
    """Create the parent folders below `base`, refusing to pass through any symbolic link."""
    cur = base
    for comp in [*parts[:-1], None]:
        with contextlib.suppress(FileExistsError):  # another worker may create it meanwhile
            os.mkdir(cur, 0o755)
        st = os.lstat(cur)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeName(f"{cur} is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeName(f"{cur} exists and is not a folder")
        if comp is not None:
            cur = cur / comp
    target = base.joinpath(*parts)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeName(f"{target} is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeName(f"{target} exists and is not a regular file")
    return target


def same_content(path: Path, size: int, sha256: str) -> bool:
    """True when the regular file at `path` holds exactly the backup's bytes; it is read only
    when the size matches, and never through a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fh.fileno()).st_size != size:
            return False
        return hashlib.file_digest(fh, "sha256").hexdigest() == sha256


def write_verified(target: Path, chunks: Iterable[bytes], size: int, sha256: str,
                   mtime_ns: int, on_bytes: Callable[[int], None] = lambda n: None,
                   *, overwrite: bool = True) -> None:
    """Write to a temporary file beside `target`; put it in place only if size and hash match.

    Without `overwrite`, FileExistsError when `target` exists by then (created while we wrote).
    """
    with atomic_file(target, mode=0o644, replace=overwrite, sync=False) as fh:
        digest = hashlib.sha256()
        written = 0
        for chunk in chunks:
            fh.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            on_bytes(len(chunk))
        if written != size or digest.hexdigest() != sha256:
            raise DecryptError(f"content does not match the manifest ({written} of {size} "
                               "bytes, or another SHA-256): tampered or truncated")
        fh.flush()  # before the times are set: a later write would change them
        os.utime(fh.fileno(), ns=(mtime_ns, mtime_ns))


class Result(Enum):
    RESTORED = "restored"
    UNCHANGED = "unchanged"  # already identical: left alone
    SKIPPED = "skipped"  # differs from the backup: kept, not overwritten
    FAILED = "failed"
    STOPPED = "stopped"  # not started: the run was stopped; the next run restores it


@dataclass(frozen=True)
class Outcome:
    """What became of one file, and why when it was not restored."""

    result: Result
    reason: str = ""


RESTORED = Outcome(Result.RESTORED)
UNCHANGED = Outcome(Result.UNCHANGED)
STOPPED = Outcome(Result.STOPPED)
DIFFERS = Outcome(Result.SKIPPED, "differs from the backup; move it away or restore with "
                                  "--overwrite to replace it")


def _failed(reason: str) -> Outcome:
    return Outcome(Result.FAILED, reason)


@dataclass
class RestoreOptions:
    kdf: KdfParams | None = None
    wrap: StoreWrapper | None = None
    progress: bool = True
    overwrite: bool = False  # replace files that differ from the backup
    # Back where they were backed up from (each file under its `[backup]` folder; the daemon's
    # restore mode), instead of below `to`: missing files come back, changed ones are kept.
    in_place: bool = False
    cancel: threading.Event | None = None  # set (SIGTERM): no new file is started


class RestoreRun:
    def __init__(self, cfg: BackupConfig, open_store: StoreFactory, to: Path,
                 categories: Iterable[str] | None = None,
                 opts: RestoreOptions | None = None) -> None:
        self.cfg = cfg
        self.open_store = open_store
        self.to = to
        self.categories = list(categories or ALL_CATEGORIES)
        self.opts = opts or RestoreOptions()
        self.stats = Stats()
        self.stats_file = StatsFile(cfg.state_dir)

    def run(self) -> Stats:
        self.stats.started_at = time.time()
        repo = open_repository(self.cfg, self.open_store, create=False, kdf=self.opts.kdf,
                               wrap=self.opts.wrap)
        try:
            manifest = read_manifest(repo)
            if manifest is None:
                raise NoBackup(f"{repo.store.where}: no manifest yet (no backup has finished)")
            if not self.opts.in_place:
                self.to.mkdir(parents=True, exist_ok=True)
            self._files(repo, manifest)
            if self._stopped():
                raise BackupCancelled
            for category in ("contacts", "calendars"):
                if category in self.categories:
                    self._snapshot(repo, manifest.snapshots.get(category), category)
        finally:
            repo.close()
            self.stats_file.write("restore", self.stats, force=True)
        return self.stats

    def _files(self, repo: Repository, manifest: Manifest) -> None:
        wanted = [r for r in iter_live(manifest) if r.category in self.categories]
        cats = self.stats.categories
        for c in CATEGORIES:
            if c in self.categories:
                cats[c].status = IN_PROGRESS
        for rec in wanted:
            cats[rec.category].total_files += 1
        progress = Progress("restore", enabled=self.opts.progress)
        progress.start(len(wanted), sum(r.size for r in wanted))
        self.stats_file.write("restore", self.stats, force=True)
        small: dict[str, list[Record]] = {}
        large: list[Record] = []
        for rec in wanted:
            if rec.offset or rec.stored_size <= RANGE_MAX:
                small.setdefault(rec.object, []).append(rec)
            else:
                large.append(rec)
        with ThreadPoolExecutor(self.cfg.concurrency, "restore") as pool:
            jobs = [pool.submit(self._pack, repo, members, progress)
                    for members in small.values()]
            jobs += [pool.submit(lambda r: [(r, self._large(repo, r, progress))], rec)
                     for rec in large]
            for fut in as_completed(jobs):
                for rec, outcome in fut.result():
                    self._count(rec, outcome, progress)
                self.stats_file.write("restore", self.stats)
        progress.close()
        for c in CATEGORIES:
            if c in self.categories:
                cats[c].status = COMPLETED
                cats[c].last_modified = time.time()

    def _stopped(self) -> bool:
        return self.opts.cancel is not None and self.opts.cancel.is_set()

    def _count(self, rec: Record, outcome: Outcome, progress: Progress) -> None:
        progress.file_done()
        if outcome.result is not Result.RESTORED:
            progress.advance(rec.size)  # nothing (more) to download for it
        cat = self.stats.categories[rec.category]
        cat.last_modified = time.time()
        if outcome.result is Result.FAILED:
            log.warning("restore: %s/%s: %s", rec.category, rec.name, outcome.reason)
        _tally(cat, f"{rec.category}/{rec.name}", outcome, rec.size)

    def _pack(self, repo: Repository, members: list[Record],
              progress: Progress) -> list[tuple[Record, Outcome]]:
        """Small files sharing one object: one ranged GET covering those that need writing,
        then each file is cut out, verified and written on its own."""
        done: list[tuple[Record, Outcome]] = []
        todo: list[tuple[Record, Path]] = []
        if self._stopped():
            return [(rec, STOPPED) for rec in members]
        for rec in members:
            where = self._target(rec)
            if isinstance(where, Path):
                todo.append((rec, where))
            else:
                done.append((rec, where))
        if not todo:
            return done
        start = min(r.offset for r, _ in todo)
        end = max(r.offset + r.stored_size for r, _ in todo)
        try:
            blob = repo.store.get_range(todo[0][0].object, start, end - start)
        except StoreError as exc:
            return done + [(r, _failed(f"cannot download: {exc}")) for r, _ in todo]
        return done + [(r, self._one(repo, r, target, progress, blob[r.offset - start:
                                                                      r.offset - start
                                                                      + r.stored_size]))
                       for r, target in todo]

    def _large(self, repo: Repository, rec: Record, progress: Progress) -> Outcome:
        if self._stopped():
            return STOPPED
        where = self._target(rec)
        return self._one(repo, rec, where, progress) if isinstance(where, Path) else where

    def _target(self, rec: Record) -> Path | Outcome:
        """Where `rec` is to be written, or its outcome when nothing is to be written."""
        try:
            parts = safe_parts(rec.name)
            base = self.to / rec.category
            if self.opts.in_place:
                found = self._root_of(rec.category, parts)
                if found is None:
                    return _failed(f"not restored: its folder {parts[0]!r} is no longer in "
                                   f"[backup] {rec.category}")
                base, parts = found
            target = prepare_target(base, parts)
            return self._existing(target, rec.size, rec.sha256) or target
        except UnsafeName as exc:
            return _refused(self.to, exc)
        except OSError as exc:
            return _failed(f"cannot write: {exc.strerror or exc}")

    def _root_of(self, category: str, parts: list[str]) -> tuple[Path, list[str]] | None:
        """The configured folder a stored name's first part (its root's label, as the scan
        named it) stands for, and the rest of the name; None when no folder has that label."""
        roots = self.cfg.roots.get(category, [])
        root = dict(zip(root_labels(roots), roots, strict=True)).get(parts[0])
        return None if root is None or len(parts) < 2 else (root, parts[1:])

    def _existing(self, target: Path, size: int, sha256: str) -> Outcome | None:
        """None when `target` is to be written (missing, or differing and `overwrite`);
        else what happens to the file already there."""
        if not os.path.lexists(target):
            return None
        if same_content(target, size, sha256):
            return UNCHANGED
        return None if self.opts.overwrite else DIFFERS

    def _one(self, repo: Repository, rec: Record, target: Path, progress: Progress,
             blob: bytes | None = None) -> Outcome:
        """Download, verify and write one file. `blob` is the stored bytes when the caller
        already has them (packs); otherwise they are streamed."""
        try:
            chunks: Iterable[bytes]
            chunks = [blob] if blob is not None else repo.store.stream(rec.object, CHUNK + 64)
            if repo.client_side:
                chunks = _decrypt(repo.keys.data, chunks)
            return self._write(target, chunks, rec.size, rec.sha256, rec.mtime_ns,
                               progress.advance)
        except DecryptError as exc:
            return _failed(f"not restored: {exc}")
        except StoreError as exc:
            return _failed(f"cannot download: {exc}")
        except OSError as exc:
            return _failed(f"cannot write: {exc.strerror or exc}")

    def _write(self, target: Path, chunks: Iterable[bytes], size: int, sha256: str,
               mtime_ns: int, on_bytes: Callable[[int], None] = lambda n: None) -> Outcome:
        """Write `target`; a file that appeared there meanwhile is judged as one that was there
        before (so never replaced without `overwrite`)."""
        try:
            write_verified(target, chunks, size, sha256, mtime_ns, on_bytes,
                           overwrite=self.opts.overwrite)
        except FileExistsError:
            return self._existing(target, size, sha256) or DIFFERS
        return RESTORED

    def _snapshot(self, repo: Repository, snap: Snapshot | None, category: str) -> None:
        cat = self.stats.categories[category]
        cat.status = IN_PROGRESS
        if snap is not None:
            try:
                tar = repo.unseal(repo.store.get(snap.object))
                if tar_digest(tar) != snap.sha256:
                    raise DecryptError("content does not match the manifest: tampered or "
                                       "truncated")
                self._extract(tar, category)
            except (DecryptError, StoreError, tarfile.TarError) as exc:
                cat.fail(category, f"snapshot not restored: {exc}")
                cat.failed_items = snap.items
        cat.status = COMPLETED
        cat.last_modified = time.time()

    def _extract(self, tar_bytes: bytes, category: str) -> None:
        cat = self.stats.categories[category]
        present, skipped = [], []  # texts of the files now holding the backup's, and the kept
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar.getmembers():
                cat.total_files += 1
                where = f"{category}/{member.name}"
                if not member.isreg():
                    _tally(cat, where, _failed("refused: not a regular file (links are never "
                                               "restored)"), 0)
                    continue
                data = tar.extractfile(member)
                content = data.read() if data is not None else b""
                outcome = self._member(category, member, content)
                _tally(cat, where, outcome, len(content))
                text = content.decode("utf-8", "replace")
                if outcome.result in (Result.RESTORED, Result.UNCHANGED):
                    present.append(text)
                elif outcome.result is Result.SKIPPED:
                    skipped.append(text)
        cat.succeeded_items = count_items("\n".join(present), category)
        cat.total_items = (cat.succeeded_items + cat.failed_items
                           + count_items("\n".join(skipped), category))

    def _member(self, category: str, member: tarfile.TarInfo, content: bytes) -> Outcome:
        """Restore one snapshot file by the same rules as any other file."""
        sha256 = hashlib.sha256(content).hexdigest()
        try:
            target = prepare_target(self.to / category, safe_parts(member.name))
            return self._existing(target, len(content), sha256) or self._write(
                target, [content], len(content), sha256, int(member.mtime) * 1_000_000_000)
        except UnsafeName as exc:
            return _refused(self.to, exc)
        except OSError as exc:
            return _failed(f"cannot write: {exc.strerror or exc}")


def _refused(to: Path, exc: UnsafeName) -> Outcome:
    return _failed(f"refused: the name would leave {to} ({exc})")


def _tally(cat: CategoryStats, where: str, outcome: Outcome, size: int) -> None:
    """Count one file's outcome; `where` (category/name) names it in the statistics."""
    if outcome.result is Result.RESTORED:
        cat.succeeded_files += 1
        cat.bytes_processed += size
    elif outcome.result is Result.UNCHANGED:
        cat.succeeded_files += 1
        cat.unchanged_files += 1
    elif outcome.result is Result.STOPPED:
        return
    elif outcome.result is Result.SKIPPED:
        log.info("restore: %s: skipped: %s", where, outcome.reason)
        cat.skip(where, outcome.reason)
    else:
        cat.fail(where, outcome.reason)


def _decrypt(key: bytes, chunks: Iterable[bytes]) -> Iterable[bytes]:
    dec = Decryptor(key)
    for chunk in chunks:
        yield from dec.feed(chunk)
    yield dec.finish()
