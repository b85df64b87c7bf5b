"""One backup run: scan, plan, upload through a bounded worker pool, record, expire, snapshot,
write the manifest. The only place that wires the pure parts (model, format) to the I/O
(index, store, files).

Memory stays bounded whatever the file sizes: a file is read one part (`part_size`) at a time,
and a shared pool of buffer tokens caps how many parts exist at once, across all workers.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from davsync.backup.index import Index, MultipartState
from davsync.backup.keys import KdfParams, KeyInfo, KeyInfoError, Keys, unlock
from davsync.backup.manifest import Manifest, ManifestError, Snapshot
from davsync.backup.model import Record, ScannedFile, plan, undeleted
from davsync.backup.network import MeteredCheck
from davsync.backup.policy import check_passphrase
from davsync.backup.progress import Progress
from davsync.backup.repo import (
    MANIFEST,
    Repository,
    StoreWrapper,
    WrongPassphrase,
    open_repository,
    repository_identity,
)
from davsync.backup.settings import CATEGORIES, BackupConfig
from davsync.backup.snapshot import SnapshotData, take_snapshot
from davsync.backup.stats import COMPLETED, IN_PROGRESS, Stats, StatsFile
from davsync.backup.store import NotFound, Part, StoreError, StoreFactory
from davsync.errors import ConfigError, DavsyncError
from davsync.secret import Secret

if TYPE_CHECKING:
    from davsync.backup.format import Encryptor

log = logging.getLogger(__name__)
INDEX_FILE = "backup.sqlite"
SEGMENT = 1 << 20   # format.DEFAULT_SEGMENT_SIZE; format (and OpenSSL) loads only to upload
MANIFEST_EVERY = 120.0
PACK_FILE_MAX = 512 * 1024      # files up to this size share pack objects...
PACK_TARGET = 8 << 20           # ...of about this size (one request instead of hundreds)
PACK_MAX_FILES = 1000


class FileChanged(Exception):
    """The file changed while it was being read; the next run picks up the new version."""


@dataclass
class Outcome:
    scanned: ScannedFile
    previous: Record | None
    record: Record | None = None
    error: str | None = None


# ---------------------------------------------------------------- scanning

def root_labels(roots: list[Path]) -> list[str]:
    """A distinct top-level restore folder per root: its base name, "-2", "-3" on a clash."""
    labels: list[str] = []
    for root in roots:
        base = root.name or "root"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


def scan(roots: dict[str, list[Path]]) -> tuple[list[ScannedFile], list[tuple[str, str, str]]]:
    """Regular files below each root (symlinks and special files are skipped, not followed),
    and (category, path, reason) for what could not be read."""
    found: list[ScannedFile] = []
    errors: list[tuple[str, str, str]] = []
    for category, paths in roots.items():
        for root, label in zip(paths, root_labels(paths), strict=True):
            if not root.is_dir():
                errors.append((category, str(root), "folder not found (check [backup] "
                               f"{category})"))
                continue
            _walk(category, str(root), label, found, errors)
    return found, errors


def _walk(category: str, top: str, prefix: str, found: list[ScannedFile],
          errors: list[tuple[str, str, str]]) -> None:
    """os.scandir, depth first in name order; string joins instead of pathlib, as a no-change
    run over thousands of files spends most of its time here."""
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        errors.append((category, top, exc.strerror or str(exc)))
        return
    for entry in entries:
        name = f"{prefix}/{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                _walk(category, entry.path, name, found, errors)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            errors.append((category, entry.path, exc.strerror or str(exc)))
            continue
        found.append(ScannedFile(category, name, entry.path, st.st_size, st.st_mtime_ns,
                                 st.st_ino))


# ---------------------------------------------------------------- uploading

def _same_file(fh: BinaryIO, f: ScannedFile) -> None:
    st = os.fstat(fh.fileno())
    if (st.st_size, st.st_mtime_ns, st.st_ino) != (f.size, f.mtime_ns, f.inode):
        raise FileChanged("changed while being read; it will be backed up on the next run")


def hash_file(path: str, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class Uploader:
    """Uploads one file at a time per calling thread; parts of big files go to `part_pool`."""

    def __init__(self, repo: Repository, index: Index, part_size: int, progress: Progress,
                 part_pool: ThreadPoolExecutor, buffers: int, now: float,
                 gate: Callable[[], None] = lambda: None) -> None:
        from davsync.backup import format as fmt

        assert fmt.DEFAULT_SEGMENT_SIZE == SEGMENT
        if part_size % SEGMENT:
            raise ValueError("part_size must be a multiple of the segment size")
        self.fmt = fmt
        self.repo = repo
        self.store = repo.store
        self.index = index
        self.part_size = part_size
        self.progress = progress
        self.part_pool = part_pool
        self.tokens = threading.BoundedSemaphore(buffers)
        self.now = now
        self.gate = gate

    def process(self, f: ScannedFile, prev: Record | None, check_hash: bool,
                upload: bool = True) -> Outcome:
        """One file; with `upload` False a changed file comes back with neither record nor
        error, for the caller to pack."""
        out = Outcome(f, prev)
        if upload:
            self.gate()
        try:
            if check_hash and prev is not None and hash_file(f.path) == prev.sha256:
                self.progress.advance(f.size)
                out.record = undeleted(prev, f)
                return out
            if upload:
                out.record = self.upload(f)
        except FileNotFoundError:
            out.error = "vanished before it could be read"
        except OSError as exc:
            out.error = f"cannot read: {exc.strerror or exc}"
        except (FileChanged, StoreError) as exc:
            out.error = str(exc)
        return out

    def process_pack(self, batch: list[tuple[ScannedFile, Record | None, bool]]) -> list[Outcome]:
        """Small files: hash-check the doubtful ones, then send the rest as one pack object."""
        self.gate()
        outs: list[Outcome] = []
        to_pack: list[tuple[ScannedFile, Record | None]] = []
        for f, prev, check_hash in batch:
            if not check_hash or prev is None:
                to_pack.append((f, prev))
                continue
            out = self.process(f, prev, True, upload=False)
            if out.record is None and out.error is None:
                to_pack.append((f, prev))
            else:
                outs.append(out)
        if to_pack:
            outs.extend(self._put_pack(to_pack))
        return outs

    def _put_pack(self, items: list[tuple[ScannedFile, Record | None]]) -> list[Outcome]:
        """Each file becomes a complete encrypted blob (own header and salt); the blobs are
        concatenated into one object, and each record keeps its blob's offset and length."""
        obj = self.repo.data_object("pack\0" + os.urandom(16).hex())
        outs: list[Outcome] = []
        members: list[Record] = []
        with self.tokens:
            body = bytearray()
            for f, prev in items:
                out = Outcome(f, prev)
                outs.append(out)
                try:
                    with open(f.path, "rb") as fh:
                        data = fh.read(f.size + 1)
                        if len(data) != f.size:
                            raise FileChanged("changed size while being read; it will be "
                                              "backed up on the next run")
                        _same_file(fh, f)
                except FileNotFoundError:
                    out.error = "vanished before it could be read"
                    continue
                except OSError as exc:
                    out.error = f"cannot read: {exc.strerror or exc}"
                    continue
                except FileChanged as exc:
                    out.error = str(exc)
                    continue
                blob = self.fmt.encrypt_bytes(self.repo.keys.data, data, SEGMENT) \
                    if self.repo.client_side else data
                rec = Record(f.category, f.name, f.path, f.size, f.mtime_ns, f.inode,
                             hashlib.sha256(data).hexdigest(), obj, len(blob), self.now,
                             offset=len(body))
                body += blob
                out.record = rec
                members.append(rec)
            if members:
                self.index.add_pending(obj, len(body), members)
                try:
                    self.store.put(obj, body)
                except StoreError as exc:
                    for out in outs:
                        if out.record is not None:
                            out.record, out.error = None, str(exc)
                    return outs
        self.progress.advance(sum(m.size for m in members))
        return outs

    def _record(self, f: ScannedFile, obj: str, sha: str, stored: int) -> Record:
        return Record(f.category, f.name, f.path, f.size, f.mtime_ns, f.inode, sha, obj, stored,
                      self.now)

    def upload(self, f: ScannedFile) -> Record:
        obj = self.repo.data_object(
            f"file\0{f.category}\0{f.name}\0{f.size}\0{f.mtime_ns}\0{f.inode}")
        stored = self.fmt.encrypted_size(f.size, SEGMENT) if self.repo.client_side else f.size
        if self.index.pending_size(obj) == stored and self.store.head(obj) == stored:
            # An interrupted run stored it but did not record it: only the hash is missing.
            sha = hash_file(f.path)
            self.progress.advance(f.size)
            return self._record(f, obj, sha, stored)
        self.index.add_pending(obj, stored)
        single = f.size <= self.part_size
        sha = self._put_single(f, obj) if single else self._put_multipart(f, obj)
        return self._record(f, obj, sha, stored)

    def _read_part(self, fh: BinaryIO, enc: Encryptor | None, number: int, per_part: int,
                   total_segments: int, digest: hashlib._Hash, keep: bool) -> tuple[bytearray, int]:
        """Part `number` (1-based) as stored, built one segment at a time so that at most one
        segment of plaintext exists beside it; with `keep` False only the hash is updated."""
        first = (number - 1) * per_part
        body = bytearray(enc.header if enc is not None and number == 1 and keep else b"")
        plain_len = 0
        for index in range(first, min(first + per_part, total_segments)):
            segment = fh.read(SEGMENT)
            digest.update(segment)
            plain_len += len(segment)
            if keep:
                body += segment if enc is None else enc.segment(
                    index, segment, index == total_segments - 1)
        return body, plain_len

    def _put_single(self, f: ScannedFile, obj: str) -> str:
        digest = hashlib.sha256()
        with self.tokens, open(f.path, "rb") as fh:
            enc = self.fmt.Encryptor(self.repo.keys.data, SEGMENT) \
                if self.repo.client_side else None
            total = self.fmt.segment_count(f.size, SEGMENT)
            body, plain_len = self._read_part(fh, enc, 1, total, total, digest, True)
            if plain_len != f.size or fh.read(1):
                raise FileChanged("changed size while being read; it will be backed up on the "
                                  "next run")
            _same_file(fh, f)
            self.store.put(obj, body)
        self.progress.advance(f.size)
        return digest.hexdigest()

    def _resume_state(self, f: ScannedFile,
                      obj: str) -> tuple[MultipartState | None, dict[int, Part]]:
        state = self.index.multipart(obj)
        if state is None:
            return None, {}
        if (state.size, state.mtime_ns, state.inode, state.part_size) == (
                f.size, f.mtime_ns, f.inode, self.part_size):
            try:
                parts = self.store.list_parts(obj, state.upload_id)
                log.info("%s: resuming upload, %d part(s) already stored", f.path, len(parts))
                return state, {p.number: p for p in parts}
            except NotFound:
                pass
        else:
            self.store.abort_multipart(obj, state.upload_id)
        self.index.drop_multipart(obj)
        return None, {}

    def _put_multipart(self, f: ScannedFile, obj: str) -> str:
        state, done = self._resume_state(f, obj)
        if state is None:
            upload_id = self.store.create_multipart(obj)
            fresh = self.fmt.Encryptor(self.repo.keys.data, SEGMENT) \
                if self.repo.client_side else None
            state = MultipartState(obj, upload_id, f.size, f.mtime_ns, f.inode,
                                   fresh.salt if fresh else None,
                                   fresh.nonce_prefix if fresh else None, self.part_size)
            self.index.save_multipart(state)
        enc = None
        if self.repo.client_side:
            enc = self.fmt.Encryptor(self.repo.keys.data, SEGMENT, state.salt, state.nonce_prefix)
        total_segments = self.fmt.segment_count(f.size, SEGMENT)
        per_part = self.part_size // SEGMENT
        part_count = -(-total_segments // per_part)
        digest = hashlib.sha256()
        futures: list[Future[Part]] = []
        parts: list[Part] = []
        try:
            with open(f.path, "rb") as fh:
                for number in range(1, part_count + 1):
                    for fut in futures:
                        if fut.done() and fut.exception() is not None:
                            fut.result()  # a part failed: stop reading, keep the rest resumable
                    stored = done.get(number)
                    if stored is not None and stored.size == self._part_size(
                            number, part_count, f.size):
                        _, plain_len = self._read_part(fh, enc, number, per_part,
                                                       total_segments, digest, False)
                        parts.append(stored)
                        self.progress.advance(plain_len)
                        continue
                    self.tokens.acquire()
                    try:
                        body, plain_len = self._read_part(fh, enc, number, per_part,
                                                          total_segments, digest, True)
                    except BaseException:
                        self.tokens.release()
                        raise
                    futures.append(self.part_pool.submit(
                        self._send_part, obj, state.upload_id, number, body, plain_len))
                    del body
                if fh.read(1):
                    raise FileChanged("grew while being read; it will be backed up next run")
                _same_file(fh, f)
            parts.extend(fut.result() for fut in futures)
        finally:
            for fut in futures:
                fut.exception()  # wait, so no part is still in flight when we return
        self.store.complete_multipart(obj, state.upload_id, parts)
        self.index.drop_multipart(obj)
        return digest.hexdigest()

    def _part_size(self, number: int, part_count: int, size: int) -> int:
        """Stored size of part `number`: what ListParts must report for it to count as done."""
        plain = self.part_size if number < part_count else size - self.part_size * (part_count - 1)
        if not self.repo.client_side:
            return plain
        header = 36 if number == 1 else 0
        return header + plain + 16 * -(-plain // SEGMENT)

    def _send_part(self, obj: str, upload_id: str, number: int, body: bytearray,
                   plain: int) -> Part:
        try:
            part = self.store.upload_part(obj, upload_id, number, body)
        finally:
            self.tokens.release()
        self.progress.advance(plain)
        return part


# ---------------------------------------------------------------- the run

@dataclass
class RunOptions:
    """Knobs for tests, the demo and the benchmark; the CLI uses the defaults."""

    now: Callable[[], float] = time.time
    kdf: KdfParams | None = None
    wrap: StoreWrapper | None = None
    progress: bool = True
    metered: Callable[[], bool] | None = None
    metered_wait: float = 60.0


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
                self._abort_strays(repo, index)
                self._recover_packs(repo, index, scanned)
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
        """Per category: the snapshot, an error text (folder missing), or None (not set)."""
        out: dict[str, SnapshotData | str | None] = {}
        for category, root in (("contacts", self.cfg.contacts_dir),
                               ("calendars", self.cfg.calendars_dir)):
            if root is None:
                out[category] = None
            elif root.is_dir():
                out[category] = take_snapshot(root, category)
            else:
                out[category] = f"folder {root} not found (check [device] {category})"
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

    def _abort_strays(self, repo: Repository, index: Index) -> None:
        """Multipart uploads under our prefix that no index row can resume (a lost index)."""
        known = {m.upload_id for m in index.multiparts()}
        try:
            uploads = repo.store.list_multipart_uploads()
        except StoreError as exc:
            log.info("cannot list unfinished uploads: %s", exc)
            return
        for name, upload_id in uploads:
            if upload_id not in known and name.startswith("data/"):
                repo.store.abort_multipart(name, upload_id)

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
                                buffers=workers, now=now, gate=self._wait_unmetered)
            work = [(f, prev, False) for f, prev in p.upload]
            work += [(f, prev, True) for f, prev in p.check_hash]
            jobs = [files.submit(_one, uploader, f, prev, check)
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
        for rec in p.mark_deleted:
            index.put_record(replace(rec, deleted_at=now))
        for rec in p.expired:
            self._expire(repo, index, rec)
        self._collect_garbage(repo, index, now)
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

    def _expire(self, repo: Repository, index: Index, rec: Record) -> None:
        """Forget the record; its object goes once no record (pack member) needs it."""
        with index.transaction():
            index.drop_record(rec)
            index.add_garbage(rec.object, rec.deleted_at or 0.0)

    def _recover_packs(self, repo: Repository, index: Index,
                       scanned: list[ScannedFile]) -> None:
        """Packs an interrupted run stored but did not record: keep the members whose files
        are unchanged (nothing is sent twice); an unusable pack becomes garbage at once."""
        pending = index.pending_packs()
        if not pending:
            return
        current = {(f.category, f.name): f for f in scanned}
        known = {r.key: r for r in index.records()}
        for obj, size, members in pending:
            stored = repo.store.head(obj) == size
            with index.transaction():
                for m in members if stored else []:
                    f = current.get(m.key)
                    if f is None or (f.size, f.mtime_ns, f.inode) != (m.size, m.mtime_ns,
                                                                       m.inode):
                        continue
                    prev = known.get(m.key)
                    index.put_record(m)
                    if prev is not None and prev.object != m.object:
                        index.add_garbage(prev.object, m.uploaded_at)
                index.drop_pending(obj)
                if stored:
                    index.add_garbage(obj, 0.0)   # deleted only if no member was kept

    def _collect_garbage(self, repo: Repository, index: Index, now: float) -> None:
        retention = self.cfg.retention_days * 86400.0
        referenced = index.referenced()
        for obj, since in index.garbage():
            if obj in referenced:
                index.drop_garbage(obj)
            elif now - since >= retention:
                try:
                    repo.store.delete(obj)
                    index.drop_garbage(obj)
                except StoreError as exc:
                    log.warning("backup: cannot remove an old version yet: %s", exc)

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


def unlock_cached(cfg: BackupConfig, index: Index,
                  passphrase: Secret) -> tuple[KeyInfo, Keys] | None:
    """Verify the passphrase against the key-info this index saw last time, without a request.

    None when there is no usable copy (first run, another bucket): the caller asks the bucket.
    """
    cached = index.get_meta("keyinfo")
    if cached is None:
        return None
    try:
        info = KeyInfo.from_bytes(cached.encode())
    except KeyInfoError:
        return None
    if index.get_meta("identity") != repository_identity(cfg, info):
        return None
    keys = unlock(info, passphrase)
    if keys is None:
        raise WrongPassphrase(f"wrong backup passphrase for bucket {cfg.bucket!r} (the "
                              "key-info verifier does not match); check [backup] "
                              "passphrase/passphrase_command")
    if info.encryption != cfg.encryption:
        raise ConfigError(f"{cfg.where} encryption: this backup was made with "
                          f"encryption = \"{info.encryption}\", not \"{cfg.encryption}\"")
    return info, keys


def _one(uploader: Uploader, f: ScannedFile, prev: Record | None,
         check_hash: bool) -> list[Outcome]:
    return [uploader.process(f, prev, check_hash)]


def pack_batches(work: list[tuple[ScannedFile, Record | None, bool]]
                 ) -> list[list[tuple[ScannedFile, Record | None, bool]]]:
    """Small files in scan order, cut into batches of about PACK_TARGET bytes (pure)."""
    batches: list[list[tuple[ScannedFile, Record | None, bool]]] = []
    current: list[tuple[ScannedFile, Record | None, bool]] = []
    size = 0
    for item in work:
        if current and (size + item[0].size > PACK_TARGET or len(current) >= PACK_MAX_FILES):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item[0].size
    if current:
        batches.append(current)
    return batches


@contextmanager
def run_lock(state_dir: Path) -> Iterator[None]:
    """One backup at a time per state dir (the daemon's schedule and a manual run)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / "backup.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DavsyncError(f"another backup is running (lock {state_dir / 'backup.lock'}); "
                               "try again when it has finished") from None
        yield
    finally:
        os.close(fd)


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


def load_snapshot_meta(index: Index, category: str) -> Snapshot | None:
    raw = index.get_meta(f"snapshot:{category}")
    return None if raw is None else Snapshot(**json.loads(raw))


def write_manifest(repo: Repository, index: Index, now: float) -> None:
    snaps = {c: s for c in ("contacts", "calendars") if (s := load_snapshot_meta(index, c))}
    manifest = Manifest(index.records(), snaps, index.garbage(), now)
    repo.store.put(MANIFEST, repo.seal(manifest.to_bytes()))


def read_manifest(repo: Repository) -> Manifest | None:
    try:
        blob = repo.store.get(MANIFEST)
    except NotFound:
        return None
    from davsync.backup.format import DecryptError

    try:
        return Manifest.from_bytes(repo.unseal(blob))
    except (DecryptError, ManifestError) as exc:
        raise DavsyncError(f"{repo.store.where}: the manifest cannot be read: {exc}") from None


def import_manifest(repo: Repository, index: Index) -> None:
    """A new or reset index starts from the bucket's manifest, so nothing is sent twice."""
    manifest = read_manifest(repo)
    if manifest is None:
        return
    with index.transaction():
        for rec in manifest.files:
            index.put_record(rec)
        for obj, since in manifest.garbage:
            index.add_garbage(obj, since)
        for category, snap in manifest.snapshots.items():
            index.set_meta(f"snapshot:{category}", json.dumps(asdict(snap)))
    log.info("backup: index rebuilt from the manifest (%d files)", len(manifest.files))


def iter_live(manifest: Manifest) -> Iterator[Record]:
    return (r for r in manifest.files if r.deleted_at is None)
