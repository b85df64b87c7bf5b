"""Backup records and the pure planning step: what changed since the last run (no I/O).

`plan` compares what a scan found with what the index remembers and decides, per file, to skip
it, hash it (the cheap metadata differs but the size does not: maybe only touched), upload it,
or mark it deleted; and which deleted entries have outlived the retention and may go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ScannedFile:
    category: str
    name: str          # restore name: "<root label>/<path below the root>", POSIX separators
    path: str          # absolute local path
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class Record:
    """One file the mirror holds (or held, until `deleted_at` + retention)."""

    category: str
    name: str
    path: str
    size: int
    mtime_ns: int
    inode: int | None
    sha256: str
    object: str
    stored_size: int
    uploaded_at: float
    deleted_at: float | None = None
    offset: int = 0   # where the file's blob starts in `object` (small files share a pack)

    @property
    def key(self) -> tuple[str, str]:
        return (self.category, self.name)


@dataclass
class Plan:
    unchanged: list[Record] = field(default_factory=list)
    check_hash: list[tuple[ScannedFile, Record]] = field(default_factory=list)
    upload: list[tuple[ScannedFile, Record | None]] = field(default_factory=list)
    mark_deleted: list[Record] = field(default_factory=list)
    expired: list[Record] = field(default_factory=list)

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f, _ in self.upload) + sum(f.size for f, _ in self.check_hash)


def plan(records: Iterable[Record], scanned: Iterable[ScannedFile], now: float,
         retention_seconds: float) -> Plan:
    """Decide what this run does. `now` is passed in so tests control time."""
    known = {r.key: r for r in records}
    out = Plan()
    seen: set[tuple[str, str]] = set()
    for f in scanned:
        key = (f.category, f.name)
        seen.add(key)
        rec = known.get(key)
        if rec is None:
            out.upload.append((f, None))
        elif rec.size != f.size:
            out.upload.append((f, rec))
        elif rec.mtime_ns == f.mtime_ns and rec.inode == f.inode and rec.deleted_at is None:
            out.unchanged.append(rec)
        else:
            out.check_hash.append((f, rec))
    for key, rec in known.items():
        if key in seen:
            continue
        if rec.deleted_at is None:
            out.mark_deleted.append(rec)
        elif now - rec.deleted_at >= retention_seconds:
            out.expired.append(rec)
    return out


def undeleted(rec: Record, f: ScannedFile) -> Record:
    """The record after a hash check proved the content unchanged: new metadata, same object."""
    return replace(rec, path=f.path, mtime_ns=f.mtime_ns, inode=f.inode, deleted_at=None)
