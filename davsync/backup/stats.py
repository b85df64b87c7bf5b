"""Backup and restore statistics: the shape `davsync status` shows, and its JSON file.

A run updates a Stats in memory and `StatsFile.write` replaces the file atomically, so a
concurrent `davsync status` reads either the previous or the next state, never half of one.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from davsync.backup.settings import ALL_CATEGORIES
from davsync.fsutil import write_atomic

YET_TO_START = "YET_TO_START"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
MAX_ERRORS = 100
STATS_FILE = "backup-stats.json"
_ITEM_WORDS = {"contacts": "contacts", "calendars": "events"}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class CategoryStats:
    category: str
    status: str = YET_TO_START
    last_modified: float | None = None
    total_files: int = 0
    succeeded_files: int = 0
    failed_files: int = 0
    bytes_processed: int = 0
    error_files: list[dict[str, str]] = field(default_factory=list)
    skipped_files: int = 0  # restore: kept because they differ from the backup
    unchanged_files: int = 0  # restore: already identical to the backup, left alone
    skipped: list[dict[str, str]] = field(default_factory=list)
    total_items: int = 0
    succeeded_items: int = 0
    failed_items: int = 0

    def fail(self, name: str, reason: str) -> None:
        self.failed_files += 1
        if len(self.error_files) < MAX_ERRORS:
            self.error_files.append({"path": name, "error": reason})

    def skip(self, name: str, reason: str) -> None:
        self.skipped_files += 1
        if len(self.skipped) < MAX_ERRORS:
            self.skipped.append({"path": name, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status, "last_modified": _iso(self.last_modified),
            "total_files": self.total_files, "succeeded_files": self.succeeded_files,
            "failed_files": self.failed_files, "bytes_processed": self.bytes_processed,
            "error_files": list(self.error_files), "skipped_files": self.skipped_files,
            "unchanged_files": self.unchanged_files, "skipped": list(self.skipped),
        }
        word = _ITEM_WORDS.get(self.category)
        if word is not None:
            out[f"total_{word}"] = self.total_items
            out[f"succeeded_{word}"] = self.succeeded_items
            out[f"failed_{word}"] = self.failed_items
        return out


@dataclass
class Stats:
    """One operation's statistics (a backup or a restore)."""

    categories: dict[str, CategoryStats] = field(
        default_factory=lambda: {c: CategoryStats(c) for c in ALL_CATEGORIES})
    started_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        cats = self.categories.values()
        statuses = {c.status for c in cats}
        status = (COMPLETED if statuses == {COMPLETED} else YET_TO_START
                  if statuses == {YET_TO_START} else IN_PROGRESS)
        stamps = [c.last_modified for c in cats if c.last_modified is not None]
        summary: dict[str, Any] = {
            "status": status, "started_at": _iso(self.started_at),
            "last_modified": _iso(max(stamps) if stamps else None),
        }
        for key in ("total_files", "succeeded_files", "failed_files", "skipped_files",
                    "unchanged_files", "bytes_processed"):
            summary[key] = sum(getattr(c, key) for c in cats)
        summary["categories"] = {c.category: c.to_json() for c in cats}
        return summary


class StatsFile:
    """`<state_dir>/backup-stats.json` holding {"backup": ..., "restore": ...}."""

    def __init__(self, state_dir: Path, min_interval: float = 1.0) -> None:
        self.path = state_dir / STATS_FILE
        self._lock = threading.Lock()
        self._last = 0.0
        self.min_interval = min_interval

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write(self, kind: str, stats: Stats, *, force: bool = False) -> None:
        """Replace the `kind` entry; at most once per `min_interval` unless `force`."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.min_interval:
                return
            self._last = now
            data = self.read()
            data[kind] = stats.to_json()
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, json.dumps(data, indent=1).encode(), sync=False)


def empty_status() -> dict[str, Any]:
    return Stats().to_json()


def read_status(state_dir: Path) -> dict[str, Any]:
    """{"backup": ..., "restore": ...}, each YET_TO_START when it never ran."""
    data = StatsFile(state_dir).read()
    return {kind: data.get(kind) or empty_status() for kind in ("backup", "restore")}
