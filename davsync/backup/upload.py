"""Uploading files: big ones in parts through a bounded pool, small ones packed together.

Memory stays bounded whatever the file sizes: a file is read one part (`part_size`) at a time,
and a shared pool of buffer tokens caps how many parts exist at once, across all workers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BufferedReader
from typing import TYPE_CHECKING

from davsync.backup.index import Index, MultipartState
from davsync.backup.model import Record, ScannedFile, undeleted
from davsync.backup.progress import Progress
from davsync.backup.repo import (
    Repository,
)
from davsync.backup.scan import FileChanged, hash_file, same_file
from davsync.backup.store import NotFound, Part, StoreError

if TYPE_CHECKING:
    from davsync.backup.format import Encryptor

log = logging.getLogger(__name__)
SEGMENT = 1 << 20   # format.DEFAULT_SEGMENT_SIZE; format (and OpenSSL) loads only to upload
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
    """Uploads one file at a time per calling thread; parts of big files go to `part_pool`."""

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
        sha = self._put_single(f, obj) if single else self._put_multipart(f, obj)
        return self._record(f, obj, sha, stored)

    def _read_part(self, fh: BufferedReader, enc: Encryptor | None, number: int, per_part: int,
                   total_segments: int, digest: hashlib._Hash, keep: bool) -> tuple[bytearray, int]:
        """Part `number` (1-based) as stored, read (and encrypted) one segment at a time straight
        into one buffer, so that at most one segment of plaintext exists beside it and no
        segment is allocated or copied twice; with `keep` False only the hash is updated."""
        first = (number - 1) * per_part
        segments = range(first, min(first + per_part, total_segments))
        header = enc.header if enc is not None and number == 1 and keep else b""
        tag = self.fmt.TAG_SIZE if enc is not None else 0
        body = bytearray(len(header) + len(segments) * (SEGMENT + tag) if keep else 0)
        body[:len(header)] = header
        plain = bytearray(SEGMENT) if enc is not None or not keep else body
        pos, plain_len = len(header), 0
        with memoryview(body) as out, memoryview(plain) as scratch:
            for index in segments:
                # Every view of `body` is released before it is trimmed (a live one forbids it).
                with out[pos:pos + SEGMENT] if plain is body else scratch[:] as into:
                    n = fh.readinto(into)
                    final = index == total_segments - 1
                    if n < SEGMENT and not final:
                        raise FileChanged("changed size while being read; it will be backed up "
                                          "on the next run")
                    digest.update(into[:n])
                    plain_len += n
                    if enc is not None and keep:
                        pos += enc.segment_into(index, into[:n], final, out[pos:pos + n + tag])
                    elif keep:
                        pos += n
        del body[pos:]
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
            same_file(fh, f)
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
                    self._check_cancel()
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
                same_file(fh, f)
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

