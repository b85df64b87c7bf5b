"""The ports the sync drives: a device store, a DAV collection and the state store.

Adapters implement them (`sources.vdir`, `dav.collection.Collection`, `state.store.StateStore`;
the tests' in-memory collection) without importing this module: the protocols are structural.
Their value types (Probe, Fetched, Synced, Refusal, ...) and errors stay with the adapters'
shared modules (`dav.api`, `core.synced`, `sources.base`, `state.store`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from davsync.core.kinds import Kind
from davsync.core.synced import Synced
from davsync.dav.api import Created, Fetched, Probe, SyncDelta
from davsync.dav.syncstream import SyncStream
from davsync.state.store import CollectionState, Refusal


class Source(Protocol):
    """A device store holding items of one kind, addressed by a name (e.g. a file name).

    `sig` is a cheap change marker (for files: mtime, size, inode) so that unchanged items are
    never read. Writes are atomic: a reader sees the old or the new item, never half of one.
    `write`/`delete` take the sig the caller last saw and refuse (SourceError) if the item
    changed since, so a user's concurrent edit is never overwritten.
    """

    kind: Kind
    location: str
    # Item-like entries the last scan left out -> why (reported). One named like an item that
    # was synced is kept, never taken for deleted (an unreadable file, a record of an export
    # that cannot be converted, named by its UID).
    skipped: dict[str, str]
    # True when the last scan left out something it cannot name (a record without UID that
    # cannot be converted): then no item missing from the scan is taken for deleted.
    partial: bool
    # True when every flush rewrites the whole store (one file): the sync then flushes and
    # records once per run, not per batch of records (O(n) per run, not O(n²)).
    writes_whole: bool

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
        """Replace an item; returns the new sig (see `settled`)."""
        ...

    def settled(self, sig: str) -> str:
        """The item's sig for one `create`/`write` returned, once the flush that made the
        write durable is done: a store that writes the files at the flush (a vdir's large
        batches, written by a helper process) returns a placeholder there, known only to it
        until then. The sync records only settled sigs."""
        ...

    def delete(self, name: str, expect_sig: str | None) -> None: ...

    def flush(self) -> dict[str, str]:
        """Make every create/write/delete so far durable (e.g. fsync the directory); returns
        name -> why for each create/write that could not be completed after all.

        Individual writes are atomic, but the store may batch their durability (a vdir syncs
        the data of a batch of files at once, then names them, then fsyncs the directory), or
        hold the writes themselves in memory (a store kept in one file writes it here, once);
        the sync calls this before it records outcomes, and records none for a returned name.
        Raises StoreUnavailable when held writes could not be made: then none may be
        recorded."""
        ...

    def start_flush(self) -> dict[str, str]:
        """Begin making the writes so far durable without waiting for it (a vdir names a
        batch of new files on a thread of its own while the sync stages the next). First
        waits for the one begun before and returns what it could not complete, or raises what
        stopped it, as `flush` does: on return, every write made before the previous call is
        durable, and the sync records those. `flush` finishes a begun one too. A store with
        nothing to gain from it does here what `flush` does."""
        ...

    def settle(self) -> None:
        """Wait for what the flushes left to a background thread (a vdir frees replaced and
        deleted files there, off the applying thread); the sync calls this once, at the end
        of each run, so that a finished run leaves nothing behind in the store."""
        ...


class DavCollection(Protocol):
    """One addressbook or calendar collection on the server.

    Hrefs are absolute paths ("/user/contacts/abc.vcf"), exactly as the server spells them in
    multistatus answers, so they compare equal across listings. Every method raises `DavError`
    subclasses, never an HTTP library's exceptions.
    """

    url: str
    kind: Kind
    exists: bool  # False when discovery found no collection of that name yet

    def ensure_exists(self, displayname: str | None = None) -> None:
        """Create the collection (extended MKCOL / MKCALENDAR) if it does not exist."""
        ...

    def probe(self) -> Probe:
        """PROPFIND Depth 0 for getctag (one request), or the sync-token where there is none."""
        ...

    def supports_sync_collection(self) -> bool: ...

    def sync(self, token: str | None) -> SyncDelta:
        """sync-collection from `token` (None: initial full listing). Raises InvalidSyncToken."""
        ...

    def sync_with_data(self, token: str | None = None) -> SyncStream | None:
        """A sync-collection from `token` (None: everything) carrying each changed item's
        data, streamed; None where the server is not known to answer it well. Raises
        InvalidSyncToken as `sync` does, and DavError when it failed before any item came
        (then nothing was handed out: take `sync` and `multiget` instead)."""
        ...

    def list_etags(self) -> dict[str, str | None]:
        """PROPFIND Depth 1: every member href with its etag."""
        ...

    def multiget(self, hrefs: Sequence[str]) -> Iterator[Fetched]:
        """addressbook-multiget / calendar-multiget in bounded batches, a few in flight;
        a batch that fails as a whole is split until the bad href is isolated."""
        ...

    def href_for(self, uid: str) -> str:
        """The href a new item with this UID gets (safe, percent-encoded file name)."""
        ...

    def create(self, href: str, data: bytes) -> str | None:
        """PUT with If-None-Match: *; returns the new etag. 412 raises PreconditionFailed."""
        ...

    def update(self, href: str, data: bytes, etag: str | None) -> str | None:
        """PUT with If-Match: etag (unconditional only if etag is None); returns the new etag."""
        ...

    def delete(self, href: str, etag: str | None) -> None:
        """DELETE with If-Match; a 404 counts as done."""
        ...

    def can_bulk_create(self) -> bool:
        """True only where the quirks table says this server stores a whole multi-item body in
        one PUT to a *new* collection URL, and this collection does not exist yet."""
        ...

    def bulk_create(self, items: Sequence[tuple[str, bytes]]) -> dict[str, Created]:
        """Create the (not yet existing) collection holding all (uid, data) items in one PUT;
        returns uid -> where it landed. Only after can_bulk_create() said True."""
        ...


class StateStore(Protocol):
    """What the sync remembers per collection (its key `name`): the synced items, the marks
    (ctag, sync token, getlastmodified) of the last complete read, hrefs to look at again,
    refused contents.

    Used from one thread only (the run's); `transaction` makes a batch of records atomic."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def collection(self, name: str) -> CollectionState | None: ...

    def save_collection(self, name: str, kind: str, url: str | None) -> None: ...

    def save_marks(self, name: str, ctag: str | None, sync_token: str | None,
                   modified: str | None = None) -> None: ...

    def save_modified(self, name: str, modified: str) -> None: ...

    def save_result(self, name: str, when: str, result: dict[str, object]) -> None: ...

    def items(self, collection: str) -> dict[str, Synced]: ...

    def record(self, collection: str, synced: Synced, text: str | None) -> None: ...

    def record_many(self, collection: str, rows: Iterable[tuple[Synced, str | None]]) -> None: ...
    def upsert(self, collection: str, rows: Iterable[tuple[Synced, str | None]]) -> None: ...

    def forget(self, collection: str, uid: str) -> None: ...

    def pending(self, collection: str) -> set[str]: ...

    def set_pending(self, collection: str, hrefs: Iterable[str]) -> None: ...

    def refused(self, collection: str) -> dict[str, Refusal]: ...

    def refuse(self, collection: str, uid: str, refusal: Refusal) -> None: ...

    def clear_refused(self, collection: str, uids: Iterable[str]) -> None: ...
