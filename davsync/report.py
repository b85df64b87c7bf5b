"""What one collection's sync did: counts and the items that failed, with their reasons.

Its own small module, so that a run which decides early that it has nothing to do can report
that without importing the engine.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger("davsync.engine")


@dataclass
class CollectionReport:
    uploaded: int = 0
    updated: int = 0
    downloaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    conflicts: int = 0
    held: int = 0  # device changes not sent: the run was pull-only (restore mode)
    pending: int = 0  # device changes not on the server at the end of the run, for `status`
    errors: list[dict[str, str]] = field(default_factory=list)
    conflict_items: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def error(self, item: str, reason: str) -> None:
        """Keep an item's failure for the summary. Logged at info level only: the command
        prints the summary, and a warning here made every error appear twice."""
        log.info("%s: %s", item, reason)
        with self._lock:
            if {"item": item, "reason": reason} not in self.errors:
                self.errors.append({"item": item, "reason": reason})

    def conflict(self, item: str, outcome: str) -> None:
        """Say which item was changed on both sides and where each version now is."""
        log.info("conflict: %s: %s", item, outcome)
        with self._lock:
            self.conflict_items.append({"item": item, "outcome": outcome})

    def summary(self) -> str:
        """One line for people: the counts, never "up to date" when something failed."""
        counts = self.as_json()
        parts = [f"{counts[k]} {k.replace('_', ' ')}" for k in
                 ("uploaded", "updated", "downloaded", "deleted_local", "deleted_remote",
                  "conflicts") if counts[k]]
        if self.held:
            parts.append(f"{self.held} held back (restore mode)")
        if self.errors:
            parts.append(f"{len(self.errors)} error{'s' if len(self.errors) > 1 else ''}")
        return ", ".join(parts) or "up to date"

    def count(self, counter: str) -> None:
        """Thread-safe increment: uploads and downloads run in a worker pool."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def as_json(self) -> dict[str, object]:
        return {
            "uploaded": self.uploaded,
            "updated": self.updated,
            "downloaded": self.downloaded,
            "deleted_local": self.deleted_local,
            "deleted_remote": self.deleted_remote,
            "conflicts": self.conflicts,
            "held": self.held,
            "pending": self.pending,
            "errors": list(self.errors),
            "conflict_items": list(self.conflict_items),
        }


def report_keys(collections: Sequence[tuple[str, str]]) -> list[str]:
    """The key of each (kind, name) in `sync --json` and `status`: the collection's name, as
    always, unless another collection has the same name (an addressbook and a calendar both
    called "Default"): then "<kind>/<name>" for each of them ("contacts/Default",
    "calendars/Default"), so that neither report hides the other."""
    names = Counter(name for _, name in collections)
    return [f"{kind}/{name}" if names[name] > 1 else name for kind, name in collections]
