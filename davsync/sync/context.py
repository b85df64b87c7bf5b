"""What every piece of one collection's sync shares: the ports, the options and the report."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from davsync.core.plan import Seen
from davsync.core.policy import ConflictPolicy
from davsync.report import CollectionReport
from davsync.sync.ports import DavCollection, Source, StateStore

# The largest item davsync uploads. A contact with a good photo is a few hundred KB; a 50 MB
# vCard is a mistake that would be re-sent, and time out, on every run.
MAX_ITEM_BYTES = 10 * 1024 * 1024
# Answers to a PUT that say "not this item" (not "not now", not "not this collection"): the
# item is remembered as refused and not sent again until its content changes.
REFUSED_STATUSES = frozenset({400, 413, 415, 422})


@dataclass(frozen=True)
class SyncOptions:
    conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    allow_mass_delete: bool = False
    concurrency: int = 4
    device_label: str = "this device"
    max_item_bytes: int = MAX_ITEM_BYTES
    # Restore mode: server changes reach the device, nothing is written to the server; device
    # changes stay where they are (their state record unchanged) and go out on a later run.
    pull_only: bool = False


@dataclass
class Context:
    """One collection's sync: `name` is its key in the state store. `cancel`, once set, stops
    the run from starting new items (the one in flight finishes, the marks stay)."""

    name: str
    source: Source
    remote: DavCollection
    store: StateStore
    options: SyncOptions
    now: Callable[[], datetime]
    cancel: threading.Event = field(default_factory=threading.Event)
    report: CollectionReport = field(default_factory=CollectionReport)

    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def device_path(self, ref: str) -> str:
        """How messages name the device item `ref`: with its folder (or file), as the user
        finds it."""
        return f"{self.source.location}/{ref}"


def seen(value: Seen | None) -> Seen:
    assert value is not None
    return value
