"""The errors of a device store; the contract it meets is `davsync.sync.ports.Source`."""

from __future__ import annotations

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
