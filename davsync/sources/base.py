"""The contract every device store meets, so the engine never knows which one it syncs."""

from __future__ import annotations

from typing import Protocol

from davsync.core.kinds import Kind
from davsync.errors import DavsyncError


class SourceError(DavsyncError):
    """One item of a device store could not be read or written."""


class StoreUnavailable(SourceError):
    """The device store itself (its folder) cannot be read: never to be taken for an empty
    store, or every item synced from it would be deleted on the server."""


class StoreMissing(StoreUnavailable):
    """The device store does not exist (moved, renamed, on a disk that is not mounted)."""


class ItemTooLarge(SourceError):
    """An item is larger than the caller's limit; it was not read."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class Source(Protocol):
    """A device store holding items of one kind, addressed by a name (e.g. a file name).

    `sig` is a cheap change marker (for files: mtime, size, inode) so that unchanged items are
    never read. Writes are atomic: a reader sees the old or the new item, never half of one.
    `write`/`delete` take the sig the caller last saw and refuse (SourceError) if the item
    changed since, so a user's concurrent edit is never overwritten.
    """

    kind: Kind
    location: str
    skipped: dict[str, str]  # item-like entries the last scan left out -> why (reported)

    def scan(self) -> dict[str, str]:
        """Every item name with its current sig. Raises StoreMissing when the store does not
        exist and StoreUnavailable when it cannot be listed: an empty answer always means an
        empty store."""
        ...

    def create_store(self) -> None:
        """Create the (empty) store; only for one that was never synced (see StoreMissing)."""
        ...

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The item's bytes; ItemTooLarge (without reading it) when it exceeds `max_bytes`."""
        ...

    def create(self, uid: str, data: bytes) -> tuple[str, str]:
        """Store a new item; returns (name, sig). Never replaces an existing item."""
        ...

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        """Replace an item; returns the new sig."""
        ...

    def delete(self, name: str, expect_sig: str | None) -> None: ...

    def flush(self) -> None:
        """Make every create/write/delete so far durable (e.g. fsync the directory).

        Individual writes are atomic and their data is synced, but the store may batch the
        durability of names; the engine calls this before it records outcomes."""
        ...
