"""A device vdir, an in-memory collection and a state store, wired to the real engine."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from davsync.core.item import parse_item
from davsync.report import CollectionReport
from davsync.sources.vdir import VdirSource
from davsync.state.store import StateStore
from davsync.sync.collection import CollectionSync
from davsync.sync.context import Context, SyncOptions
from davsync.sync.ports import Source
from tests.unit.memdav import MemCollection


def vcard(uid: str | None, fn: str) -> bytes:
    uid_line = f"UID:{uid}\r\n" if uid else ""
    text = f"BEGIN:VCARD\r\nVERSION:3.0\r\n{uid_line}FN:{fn}\r\nN:{fn};;;;\r\nEND:VCARD\r\n"
    return text.encode()


class Rig:
    def __init__(self, root: Path, **options: object) -> None:
        self.dir = root / "device"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.remote = MemCollection()
        self.store = StateStore(root / "state.sqlite")
        self.options = SyncOptions(**options)  # type: ignore[arg-type]

    def sync(self, source: Source | None = None, cancel: threading.Event | None = None,
             **options: object) -> CollectionReport:
        """One run; `source` stands in for the device folder's vdir, `cancel` stops the run."""
        opts = SyncOptions(**{**self.options.__dict__, **options})  # type: ignore[arg-type]
        ctx = Context("c", source or VdirSource(self.dir, "contacts"), self.remote, self.store,
                      opts, lambda: datetime(2026, 11, 22, tzinfo=UTC),
                      cancel or threading.Event())
        return CollectionSync(ctx).run()

    def device(self) -> dict[str, str]:
        """uid -> FN on the device."""
        out = {}
        for f in self.dir.glob("*.vcf"):
            item = parse_item(f.read_bytes(), "contacts")
            out[item.uid or ""] = _fn(item.text)
        return out

    def server(self) -> dict[str, str]:
        out = {}
        for _, data in self.remote.items.values():
            item = parse_item(data, "contacts")
            out[item.uid or ""] = _fn(item.text)
        return out


def _fn(text: str) -> str:
    return next(line[3:] for line in text.splitlines() if line.startswith("FN:"))
