"""BlobStore: the one interface backups talk to. It moves opaque bytes under opaque names.

Encryption lives above it (format.py) or is delegated to the server by the adapter (SSE-C);
retrying and logging wrap the same interface (RetryingStore) instead of living in adapters.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from davsync.core.retry import backoff

T = TypeVar("T")
STORE_BACKOFF_CAP: Final = 60.0
log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store failed; `transient` says whether trying again may help. Never holds secrets."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class NotFound(StoreError):
    """The object (or multipart upload) does not exist."""


class AccessDenied(StoreError):
    """Credentials refused, or (SSE-C) the object is under another key."""


@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int


class BlobStore(Protocol):
    """Contract every adapter keeps (tests/integration/test_backup_store.py checks it):

    - names are relative, `[0-9a-z/._-]`; the adapter maps them into its bucket and prefix;
    - `put` and `complete_multipart` are atomic: an object is either absent or complete;
    - `get_range` returns exactly `length` bytes from `offset` (a file inside a pack);
    - `get`/`stream`/`get_range`/`head` raise NotFound for a missing object (`delete` does not);
    - `list_parts` returns parts already stored for an unfinished upload, NotFound if the upload
      is gone; parts are 1-based and every part but the last is at least 5 MiB;
    - every error is a StoreError (NotFound, AccessDenied, or transient/other) with a message
      that names the store and the object, and never a key.
    """

    where: str

    def ensure_bucket(self) -> None: ...
    def put(self, name: str, data: bytes | bytearray) -> None: ...
    def get(self, name: str) -> bytes: ...
    def stream(self, name: str, chunk_size: int) -> Iterator[bytes]: ...
    def get_range(self, name: str, offset: int, length: int) -> bytes: ...
    def head(self, name: str) -> int | None: ...
    def delete(self, name: str) -> None: ...
    def create_multipart(self, name: str) -> str: ...
    def upload_part(self, name: str, upload_id: str, number: int,
                    data: bytes | bytearray) -> Part: ...
    def list_parts(self, name: str, upload_id: str) -> list[Part]: ...
    def complete_multipart(self, name: str, upload_id: str, parts: list[Part]) -> None: ...
    def abort_multipart(self, name: str, upload_id: str) -> None: ...
    def list_multipart_uploads(self) -> list[tuple[str, str]]: ...


class EncryptableStore(BlobStore, Protocol):
    """A store that can also let the server encrypt every object with a key we hold (SSE-C)."""

    def with_sse_c(self, key: bytes) -> BlobStore: ...


@dataclass(frozen=True)
class OpenedStore:
    """A store a run opened (its connections are the run's) and how to release them."""

    store: EncryptableStore
    close: Callable[[], None]


StoreFactory = Callable[[], OpenedStore]
"""Opens the configured store; built by the composition root (davsync/app/backup.py), called
only when a run really needs the bucket (a run with nothing to do never imports boto3)."""


class RetryingStore:
    """Retries transient failures with the shared jittered backoff (`core/retry.py`), logging
    each retry.

    `stream` is not retried mid-way (the caller restarts a whole object); everything else is
    idempotent under the contract above, so retrying it is safe.
    """

    def __init__(self, inner: BlobStore, attempts: int = 4, base_delay: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.where = inner.where
        self.attempts = attempts
        self.base_delay = base_delay
        self._sleep = sleep

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except StoreError as exc:
                if not exc.transient or attempt == self.attempts:
                    raise
                delay = backoff(attempt - 1, random.random(), base=self.base_delay,
                                cap=STORE_BACKOFF_CAP)
                log.info("%s: %s failed (%s), retry %d in %.1f s", self.where, what, exc,
                         attempt, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def ensure_bucket(self) -> None:
        self._call("create bucket", self.inner.ensure_bucket)

    def put(self, name: str, data: bytes | bytearray) -> None:
        self._call(f"put {name}", lambda: self.inner.put(name, data))

    def get(self, name: str) -> bytes:
        return self._call(f"get {name}", lambda: self.inner.get(name))

    def stream(self, name: str, chunk_size: int) -> Iterator[bytes]:
        return self.inner.stream(name, chunk_size)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._call(f"get {name}", lambda: self.inner.get_range(name, offset, length))

    def head(self, name: str) -> int | None:
        return self._call(f"head {name}", lambda: self.inner.head(name))

    def delete(self, name: str) -> None:
        self._call(f"delete {name}", lambda: self.inner.delete(name))

    def create_multipart(self, name: str) -> str:
        return self._call(f"create upload {name}", lambda: self.inner.create_multipart(name))

    def upload_part(self, name: str, upload_id: str, number: int, data: bytes | bytearray) -> Part:
        return self._call(f"upload part {number} of {name}",
                          lambda: self.inner.upload_part(name, upload_id, number, data))

    def list_parts(self, name: str, upload_id: str) -> list[Part]:
        return self._call(f"list parts {name}", lambda: self.inner.list_parts(name, upload_id))

    def complete_multipart(self, name: str, upload_id: str, parts: list[Part]) -> None:
        self._call(f"complete {name}",
                   lambda: self.inner.complete_multipart(name, upload_id, parts))

    def abort_multipart(self, name: str, upload_id: str) -> None:
        self._call(f"abort {name}", lambda: self.inner.abort_multipart(name, upload_id))

    def list_multipart_uploads(self) -> list[tuple[str, str]]:
        return self._call("list uploads", self.inner.list_multipart_uploads)
