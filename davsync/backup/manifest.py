"""The manifest: the bucket's own copy of the index, so a new machine can restore with nothing
but the passphrase and the bucket credentials. gzip'd JSON; client mode encrypts it (format.py),
SSE-C mode leaves it to the server's encryption so standard tools can read it (pure)."""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from davsync.backup.model import Record

MANIFEST_FORMAT = "davsync-backup-manifest"
MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """The manifest is not one davsync wrote."""


@dataclass(frozen=True)
class Snapshot:
    """A contacts or calendars snapshot: a tar of the vdir's .vcf/.ics files."""

    object: str
    sha256: str
    size: int
    stored_size: int
    items: int
    taken_at: float


@dataclass
class Manifest:
    files: list[Record] = field(default_factory=list)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    garbage: list[tuple[str, float]] = field(default_factory=list)
    written_at: float = 0.0

    def to_bytes(self) -> bytes:
        files = []
        for r in self.files:
            d = asdict(r)
            del d["path"], d["inode"]  # local facts; they mean nothing on another machine
            files.append(d)
        doc = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "written_at": self.written_at,
            "files": files, "snapshots": {k: asdict(v) for k, v in self.snapshots.items()},
            "garbage": [{"object": o, "since": s} for o, s in self.garbage],
        }
        return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6,
                             mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc: dict[str, Any] = json.loads(gzip.decompress(data))
            if doc.get("format") != MANIFEST_FORMAT:
                raise ManifestError("not a davsync manifest")
            if doc.get("version") != MANIFEST_VERSION:
                raise ManifestError(f"manifest version {doc.get('version')} is not supported")
            files = [Record(path="", inode=None, **f) for f in doc["files"]]
            snaps = {k: Snapshot(**v) for k, v in doc.get("snapshots", {}).items()}
            garbage = [(str(g["object"]), float(g["since"])) for g in doc.get("garbage", [])]
            return cls(files, snaps, garbage, float(doc.get("written_at", 0.0)))
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError, OSError, EOFError) as exc:
            raise ManifestError(f"malformed manifest: {exc}") from None
