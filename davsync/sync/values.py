"""What a sync run is given (`Target`) and what it gives back (`SyncResult`).

Light on purpose: the composition root's no-op fast path builds and fills them without
importing httpx, the sync pieces or a parser.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from davsync.dav.api import Probe
from davsync.errors import EXIT_ITEMS_FAILED, EXIT_OK, DavsyncError
from davsync.report import CollectionReport

if TYPE_CHECKING:
    from davsync.core.kinds import Kind
    from davsync.dav.collection import Collection
    from davsync.dav.earlyprobe import EarlyProbe, EarlySync


@dataclass
class Target:
    """One collection of a run: where it lives on the device, and its state key."""

    kind: Kind
    name: str
    path: Path
    key: str
    url: str | None = None  # known from the state: opened without a request
    early: EarlyProbe | None = None
    early_sync: EarlySync | None = None  # sent once the early probe showed a change
    remote: Collection | None = None
    probe: Future[Probe] | None = None
    report_key: str = ""  # its key in `sync --json` (`report.report_keys`); "": the name

    def __post_init__(self) -> None:
        self.report_key = self.report_key or self.name


@dataclass
class SyncResult:
    collections: dict[str, CollectionReport] = field(default_factory=dict)
    http_requests: int = 0
    fatal: DavsyncError | None = None
    cancelled: bool = False  # stopped between items; the collections not reached are absent

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return self.fatal.exit_code
        failed = any(report.errors for report in self.collections.values())
        return EXIT_ITEMS_FAILED if failed else EXIT_OK

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "collections": {name: r.as_json() for name, r in self.collections.items()},
            "http_requests": self.http_requests,
        }
        if self.fatal is not None:
            out["error"] = str(self.fatal)
        if self.cancelled:
            out["cancelled"] = True
        return out
