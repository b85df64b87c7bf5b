"""Uploading files: big ones in parts through a bounded pool (`multipart.py`, parts built by
`parts.py`), small ones packed together.

Memory stays bounded whatever the file sizes: a file is read one part (`part_size`) at a time,
and a shared pool of buffer tokens caps how many parts exist at once, across all workers.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from davsync.backup.index import Index
from davsync.backup.model import Record, ScannedFile, undeleted
from davsync.backup.multipart import MultipartUpload
from davsync.backup.parts import SEGMENT, read_part
from davsync.backup.progress import Progress
from davsync.backup.repo import (
    Repository,
)
from davsync.backup.scan import FileChanged, hash_file, same_file
from davsync.backup.store import StoreError

PACK_FILE_MAX = 512 * 1024      # files up to this size share pack objects...
PACK_TARGET = 8 << 20           # ...of about this size (one request instead of hundreds)
PACK_MAX_FILES = 1000


@dataclass
class Outcome:
    scanned: ScannedFile
    previous: Record | None
    record: Record | None = None
    error: str | None = None
    cancelled: bool = False  # not (fully) sent: the run was stopped; the next run sends it


class Cancelled(Exception):
    """The run was stopped (SIGTERM): no new file or part is started."""



class Uploader:
    """Uploads one file at a time per calling thread: small ones packed, one part's worth
    in one request, bigger ones through `MultipartUpload` (parts go to `part_pool`)."""

    def __init__(self, repo: Repository, index: Index, part_size: int, progress: Progress,
                 part_pool: ThreadPoolExecutor, buffers: int, now: float,
                 gate: Callable[[], None] = lambda: None,
                 cancel: threading.Event | None = None) -> None:
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
        self.cancel = cancel or threading.Event()
        self.multipart = MultipartUpload(repo, index, part_size, progress, part_pool,
                                         self.tokens, fmt, self._check_cancel)

    def _check_cancel(self) -> None:
        """Called before each file, pack and part: a stopped run starts nothing new (a part
        in flight finishes; a multipart upload stays recorded in the index and resumes)."""
        if self.cancel.is_set():
            raise Cancelled

    def process(self, f: ScannedFile, prev: Record | None, check_hash: bool,
                upload: bool = True) -> Outcome:
        """One file; with `upload` False a changed file comes back with neither record nor
        error, for the caller to pack."""
        out = Outcome(f, prev)
        try:
            if upload:
                self._check_cancel()
                self.gate()
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
        except Cancelled:
            out.cancelled = True
        return out

    def process_pack(self, batch: list[tuple[ScannedFile, Record | None, bool]]) -> list[Outcome]:
        """Small files: hash-check the doubtful ones, then send the rest as one pack object."""
        if self.cancel.is_set():
            return [Outcome(f, prev, cancelled=True) for f, prev, _ in batch]
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
                        same_file(fh, f)
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
        sha = self._put_single(f, obj) if single else self.multipart.put(f, obj)
        return self._record(f, obj, sha, stored)

    def _put_single(self, f: ScannedFile, obj: str) -> str:
        digest = hashlib.sha256()
        with self.tokens, open(f.path, "rb") as fh:
            enc = self.fmt.Encryptor(self.repo.keys.data, SEGMENT) \
                if self.repo.client_side else None
            total = self.fmt.segment_count(f.size, SEGMENT)
            body, plain_len = read_part(fh, enc, 1, total, total, digest, True)
            if plain_len != f.size or fh.read(1):
                raise FileChanged("changed size while being read; it will be backed up on the "
                                  "next run")
            same_file(fh, f)
            self.store.put(obj, body)
        self.progress.advance(f.size)
        return digest.hexdigest()


def upload_one(uploader: Uploader, f: ScannedFile, prev: Record | None,
               check_hash: bool) -> list[Outcome]:
    """A big file, as a job that returns outcomes like a pack's."""
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

