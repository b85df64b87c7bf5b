"""A big file's multipart upload and its bookkeeping: the upload recorded in the index (so an
interrupted run resumes it: the parts already stored are kept), its parts sent through the
shared part pool, each holding one of the buffer tokens until it is sent."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING

from davsync.backup.index import Index, MultipartState
from davsync.backup.model import ScannedFile
from davsync.backup.parts import SEGMENT, read_part, stored_part_size
from davsync.backup.progress import Progress
from davsync.backup.repo import Repository
from davsync.backup.scan import FileChanged, same_file
from davsync.backup.store import NotFound, Part

if TYPE_CHECKING:
    from davsync.backup.format import Encryptor

log = logging.getLogger("davsync.backup.upload")  # the uploader's log, as before the split


class MultipartUpload:
    """Sends files bigger than `part_size` in parts; `put` returns the file's sha256."""

    def __init__(self, repo: Repository, index: Index, part_size: int, progress: Progress,
                 part_pool: ThreadPoolExecutor, tokens: threading.BoundedSemaphore,
                 fmt: ModuleType, check_cancel: Callable[[], None]) -> None:
        self.repo = repo
        self.store = repo.store
        self.index = index
        self.part_size = part_size
        self.progress = progress
        self.part_pool = part_pool
        self.tokens = tokens  # shared with the uploader: caps the parts in memory
        self.fmt = fmt
        self.check_cancel = check_cancel  # before each part: a stopped run starts none

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

    def _start(self, f: ScannedFile, obj: str) -> MultipartState:
        """A new upload, recorded before any part is sent (with its salt, so that a resumed
        upload encrypts the rest with the same key)."""
        upload_id = self.store.create_multipart(obj)
        fresh = self.fmt.Encryptor(self.repo.keys.data, SEGMENT) \
            if self.repo.client_side else None
        state = MultipartState(obj, upload_id, f.size, f.mtime_ns, f.inode,
                               fresh.salt if fresh else None,
                               fresh.nonce_prefix if fresh else None, self.part_size)
        self.index.save_multipart(state)
        return state

    def put(self, f: ScannedFile, obj: str) -> str:
        """Send the file's parts (resuming a recorded upload) and complete the upload."""
        state, done = self._resume_state(f, obj)
        if state is None:
            state = self._start(f, obj)
        enc: Encryptor | None = None
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
                    self.check_cancel()
                    stored = done.get(number)
                    if stored is not None and stored.size == stored_part_size(
                            self.part_size, number, part_count, f.size, self.repo.client_side):
                        _, plain_len = read_part(fh, enc, number, per_part, total_segments,
                                                 digest, False)
                        parts.append(stored)
                        self.progress.advance(plain_len)
                        continue
                    self.tokens.acquire()
                    try:
                        body, plain_len = read_part(fh, enc, number, per_part, total_segments,
                                                    digest, True)
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

    def _send_part(self, obj: str, upload_id: str, number: int, body: bytearray,
                   plain: int) -> Part:
        try:
            part = self.store.upload_part(obj, upload_id, number, body)
        finally:
            self.tokens.release()
        self.progress.advance(plain)
        return part
