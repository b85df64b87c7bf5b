"""One backup run: scan, plan, upload through a bounded worker pool, record, expire, snapshot,
write the manifest. The only place that wires the pure parts (model, format) to the I/O
(index, store, files) of a backup.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from davsync.backup.index import Index
from davsync.backup.keys import KdfParams
from davsync.backup.manifest import Snapshot
from davsync.backup.mirror import (
    abort_strays,
    collect_garbage,
    expire,
    import_manifest,
    load_snapshot_meta,
    recover_packs,
    unlock_cached,
    write_manifest,
)
from davsync.backup.model import ScannedFile, plan
from davsync.backup.network import MeteredCheck
from davsync.backup.policy import check_passphrase
from davsync.backup.progress import Progress
from davsync.backup.repo import (
    Repository,
    StoreWrapper,
    open_repository,
)
from davsync.backup.scan import scan
from davsync.backup.settings import CATEGORIES, BackupConfig
from davsync.backup.snapshot import SnapshotData, take_snapshot
from davsync.backup.stats import COMPLETED, IN_PROGRESS, Stats, StatsFile
from davsync.backup.store import StoreError, StoreFactory
from davsync.backup.upload import PACK_FILE_MAX, Outcome, Uploader, pack_batches, upload_one
from davsync.secret import Secret
from davsync.state.lock import state_lock

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)
INDEX_FILE = "backup.sqlite"
MANIFEST_EVERY = 120.0


@dataclass
class RunOptions:
    """Knobs for tests, the demo and the benchmark; the CLI uses the defaults."""

    now: Callable[[], float] = time.time
    kdf: KdfParams | None = None
    wrap: StoreWrapper | None = None
    progress: bool = True
    metered: Callable[[], bool] | None = None
    metered_wait: float = 60.0
    cancel: threading.Event | None = None  # set (SIGTERM): stop between files and parts


class BackupCancelled(Exception):
    """The run stopped early on `RunOptions.cancel`: what was uploaded is in the index, the
    manifest is left marked dirty, and the next run sends (or resumes) the rest."""


class BackupRun:
    """One run. When the index already knows this bucket's key-info and nothing changed, the
    run verifies the passphrase locally and ends without a single request (or boto3 import)."""

    def __init__(self, cfg: BackupConfig, open_store: StoreFactory,
                 opts: RunOptions | None = None) -> None:
        self.cfg = cfg
        self.open_store = open_store
        self.opts = opts or RunOptions()
        self.stats = Stats()
        self.stats_file = StatsFile(cfg.state_dir)
        self._metered_lock = threading.Lock()
        self._metered_checked = -float("inf")
        self._metered_check = MeteredCheck()

    def _wait_unmetered(self) -> None:
        """With `unmetered_only`, block while the network is metered. Called before the first
        request and by every worker before each file, asking NetworkManager at most once per
        `metered_wait` seconds, so a run that starts on Wi-Fi pauses on a phone hotspot."""
        if not self.cfg.unmetered_only:
            return
        with self._metered_lock:
            now = time.monotonic()
            if now - self._metered_checked < self.opts.metered_wait:
                return
            check = self.opts.metered or self._metered_check
            told = False
            while check():
                if not told:
                    log.warning("backup: the network is metered; waiting "
                                "(unmetered_only = true)")
                    told = True
                time.sleep(self.opts.metered_wait)
            if told:
                log.warning("backup: the network is unmetered again; continuing")
            self._metered_checked = time.monotonic()

    def run(self) -> Stats:
        now = self.opts.now()
        self.stats.started_at = now
        passphrase = self.cfg.passphrase()
        check_passphrase(passphrase, f"{self.cfg.where} passphrase")
        limit_malloc_arenas()
        with run_lock(self.cfg.state_dir):
            return self._run_locked(passphrase, now)

    def _run_locked(self, passphrase: Secret, now: float) -> Stats:
        index = Index(self.cfg.state_dir / INDEX_FILE)
        try:
            # Argon2 runs in C without the GIL: derive the key while the folders are scanned.
            with ThreadPoolExecutor(1, "backup-kdf") as kdf:
                unlocking = kdf.submit(unlock_cached, self.cfg, index, passphrase)
                scanned, errors = scan(self.cfg.roots)
                snaps = self._take_snapshots()
                quiet = self._nothing_to_do(index, scanned, snaps, now)
                unlocked = unlocking.result()
            if unlocked is not None and quiet:
                self._count_unchanged(scanned, errors, snaps, now)
                return self.stats
            self._wait_unmetered()
            repo = open_repository(self.cfg, self.open_store, create=True, kdf=self.opts.kdf,
                                   wrap=self.opts.wrap, passphrase=passphrase,
                                   unlocked=unlocked)
            try:
                if index.bind(repo.identity):
                    import_manifest(repo, index)
                index.set_meta("keyinfo", repo.keyinfo.to_bytes().decode())
                index.set_meta("manifest_dirty", "1")
                abort_strays(repo, index)
                recover_packs(repo, index, scanned)
                self._files(repo, index, scanned, errors, now)
                self._snapshots(repo, index, snaps, now)
                write_manifest(repo, index, now)
                index.set_meta("manifest_dirty", "0")
            finally:
                repo.close()
        finally:
            index.close()
            self.stats_file.write("backup", self.stats, force=True)
        return self.stats

    def _take_snapshots(self) -> dict[str, SnapshotData | str | None]:
        """Per category: the snapshot, an error text (store missing), or None (not set)."""
        out: dict[str, SnapshotData | str | None] = {}
        for category, root in (("contacts", self.cfg.contacts_dir),
                               ("calendars", self.cfg.calendars_dir)):
            if root is None:
                out[category] = None
            elif root.is_dir() or root.is_file():  # a vdir, or a file store's one file
                out[category] = take_snapshot(root, category)
            else:
                out[category] = f"{root} not found (check [device] {category})"
        return out

    def _nothing_to_do(self, index: Index, scanned: list[ScannedFile],
                       snaps: dict[str, SnapshotData | str | None], now: float) -> bool:
        retention = self.cfg.retention_days * 86400.0
        p = plan(index.records(), scanned, now, retention)
        if p.upload or p.check_hash or p.mark_deleted or p.expired:
            return False
        if index.get_meta("manifest_dirty") != "0" or index.multiparts():
            return False
        if any(now - since >= retention for _, since in index.garbage()):
            return False
        for category, snap in snaps.items():
            if isinstance(snap, SnapshotData):
                meta = load_snapshot_meta(index, category)
                if meta is None or meta.sha256 != snap.sha256:
                    return False
        return True

    def _count_unchanged(self, scanned: list[ScannedFile], errors: list[tuple[str, str, str]],
                         snaps: dict[str, SnapshotData | str | None], now: float) -> None:
        cats = self.stats.categories
        for category, path, reason in errors:
            cats[category].fail(path, reason)
        for f in scanned:
            cats[f.category].total_files += 1
            cats[f.category].succeeded_files += 1
        for category, snap in snaps.items():
            self._snapshot_counts(category, snap)
        for cat in cats.values():
            cat.status = COMPLETED
            cat.last_modified = now

    def _snapshot_counts(self, category: str, snap: SnapshotData | str | None) -> None:
        cat = self.stats.categories[category]
        if isinstance(snap, str):
            cat.fail(category, snap)
        elif snap is not None:
            cat.total_files = snap.files + len(snap.failed)
            cat.total_items = snap.items + len(snap.failed)
            cat.succeeded_files = snap.files
            cat.succeeded_items = snap.items
            for rel, reason in snap.failed:
                cat.fail(rel, reason)
                cat.failed_items += 1

    def _files(self, repo: Repository, index: Index, scanned: list[ScannedFile],
               errors: list[tuple[str, str, str]], now: float) -> None:
        cats = self.stats.categories
        for category, path, reason in errors:
            cats[category].fail(path, reason)
        for f in scanned:
            cats[f.category].total_files += 1
        for c in CATEGORIES:
            cats[c].status = IN_PROGRESS
            cats[c].last_modified = now
        p = plan(index.records(), scanned, now, self.cfg.retention_days * 86400.0)
        for rec in p.unchanged:
            cats[rec.category].succeeded_files += 1
        progress = Progress("backup", enabled=self.opts.progress)
        progress.start(len(p.upload) + len(p.check_hash), p.upload_bytes)
        self.stats_file.write("backup", self.stats, force=True)
        workers = self.cfg.concurrency
        with ThreadPoolExecutor(workers, "backup-part") as parts, \
                ThreadPoolExecutor(workers, "backup-file") as files:
            uploader = Uploader(repo, index, self.cfg.part_size, progress, parts,
                                buffers=workers, now=now, gate=self._wait_unmetered,
                                cancel=self.opts.cancel)
            work = [(f, prev, False) for f, prev in p.upload]
            work += [(f, prev, True) for f, prev in p.check_hash]
            jobs = [files.submit(upload_one, uploader, f, prev, check)
                    for f, prev, check in work if f.size > PACK_FILE_MAX]
            jobs += [files.submit(uploader.process_pack, batch) for batch in
                     pack_batches([w for w in work if w[0].size <= PACK_FILE_MAX])]
            try:
                self._collect(jobs, index, repo, now, progress)
            except BaseException:
                files.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                progress.close()
        if self.opts.cancel is not None and self.opts.cancel.is_set():
            raise BackupCancelled
        for rec in p.mark_deleted:
            index.put_record(replace(rec, deleted_at=now))
        for rec in p.expired:
            expire(index, rec)
        collect_garbage(repo, index, now, self.cfg.retention_days * 86400.0)
        for c in CATEGORIES:
            cats[c].status = COMPLETED
            cats[c].last_modified = self.opts.now()

    def _collect(self, jobs: list[Future[list[Outcome]]], index: Index, repo: Repository,
                 now: float, progress: Progress) -> None:
        last_manifest = time.monotonic()
        for fut in as_completed(jobs):
            outs = fut.result()
            with index.transaction():
                for out in outs:
                    self._record_outcome(out, index, now, progress)
            self.stats_file.write("backup", self.stats)
            if time.monotonic() - last_manifest > MANIFEST_EVERY:
                write_manifest(repo, index, now)
                last_manifest = time.monotonic()

    def _record_outcome(self, out: Outcome, index: Index, now: float,
                        progress: Progress) -> None:
        cat = self.stats.categories[out.scanned.category]
        progress.file_done()
        if out.cancelled:
            return
        if out.record is None:
            cat.fail(out.scanned.path, out.error or "failed")
            log.warning("backup: %s: %s", out.scanned.path, out.error)
            return
        index.put_record(out.record)
        index.drop_pending(out.record.object)
        if out.previous is not None and out.previous.object != out.record.object:
            index.add_garbage(out.previous.object, now)
        cat.succeeded_files += 1
        cat.bytes_processed += out.scanned.size
        cat.last_modified = self.opts.now()

    def _snapshots(self, repo: Repository, index: Index,
                   snaps: dict[str, SnapshotData | str | None], now: float) -> None:
        for category, snap in snaps.items():
            cat = self.stats.categories[category]
            cat.status = IN_PROGRESS
            cat.last_modified = now
            self._snapshot_counts(category, snap)
            if isinstance(snap, SnapshotData):
                self._upload_snapshot(repo, index, category, snap, now)
            cat.status = COMPLETED
            cat.last_modified = self.opts.now()

    def _upload_snapshot(self, repo: Repository, index: Index, category: str,
                         snap: SnapshotData, now: float) -> None:
        cat = self.stats.categories[category]
        previous = load_snapshot_meta(index, category)
        if previous is not None and previous.sha256 == snap.sha256:
            return
        body = repo.seal(snap.tar)
        obj = repo.snapshot_object(category)
        try:
            repo.store.put(obj, body)
        except StoreError as exc:
            cat.fail(category, str(exc))
            cat.succeeded_files = cat.succeeded_items = 0
            cat.failed_items = cat.total_items
            return
        meta = Snapshot(obj, snap.sha256, len(snap.tar), len(body), snap.items, now)
        index.set_meta(f"snapshot:{category}", json.dumps(asdict(meta)))
        cat.bytes_processed = len(snap.tar)



@contextmanager
def run_lock(state_dir: Path) -> Iterator[None]:
    """One backup at a time per state dir (the daemon's schedule and a manual run): the state
    directory's lock, not waited for (a backup takes minutes; the second one says so at once)."""
    with state_lock(state_dir, "backup", wait=0, busy=_busy):
        yield


def _busy(path: Path, who: str) -> str:
    return f"another backup is running ({who}, lock {path}); try again when it has finished"


def limit_malloc_arenas() -> None:
    """Keep glibc from hoarding freed part buffers in per-thread arenas.

    Big buffers (parts, segments) then come from mmap and go straight back to the OS when
    freed, so peak RSS follows the part budget instead of growing with the thread count.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)            # M_ARENA_MAX
        libc.mallopt(-3, 256 * 1024)   # M_MMAP_THRESHOLD (fixed: no dynamic raising)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass

