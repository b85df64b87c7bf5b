"""Helpers shared by the backup integration tests (not a test module itself)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from davsync.backup.keys import KdfParams
from davsync.backup.restore import RestoreOptions
from davsync.backup.runner import RunOptions
from davsync.backup.store import BlobStore, Part, StoreError
from tests.fixtures.seaweed import FAST_KDF

KDF = KdfParams(**FAST_KDF)


class Interrupted(StoreError):
    """Injected failure: the connection 'dropped' after some parts."""


class CountingStore:
    """Wraps a real store: counts what is sent and can fail after `fail_after_parts` parts."""

    inner: BlobStore  # set by run_opts' wrapper when the repository is opened

    def __init__(self, fail_after_parts: int | None = None) -> None:
        self.where = "counting"
        self.puts: list[str] = []
        self.parts: list[tuple[str, int]] = []
        self.fail_after_parts = fail_after_parts

    def __getattr__(self, name: str) -> object:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def put(self, name: str, data: bytes | bytearray) -> None:
        self.puts.append(name)
        self.inner.put(name, data)

    def upload_part(self, name: str, upload_id: str, number: int, data: bytes | bytearray) -> Part:
        if self.fail_after_parts is not None and len(self.parts) >= self.fail_after_parts:
            raise Interrupted("injected: connection dropped")
        self.parts.append((name, number))
        return self.inner.upload_part(name, upload_id, number, data)

    def stream(self, name: str, chunk_size: int) -> Iterator[bytes]:
        return self.inner.stream(name, chunk_size)

    @property
    def data_puts(self) -> list[str]:
        return [p for p in self.puts if p.startswith("data/")]


def run_opts(store: CountingStore | None = None, **kw: object) -> RunOptions:
    wrap = None
    if store is not None:
        def wrap(inner: BlobStore) -> BlobStore:
            store.inner = inner
            store.where = inner.where
            return store  # type: ignore[return-value]
    return RunOptions(kdf=KDF, wrap=wrap, progress=False, **kw)  # type: ignore[arg-type]


def restore_opts() -> RestoreOptions:
    return RestoreOptions(kdf=KDF, progress=False)


def make_file(path: Path, size: int, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """relative path -> (content, mtime_ns) for every regular file below root."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}
