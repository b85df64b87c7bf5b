"""Contacts and calendars snapshots: the vdir's .vcf/.ics files in one tar (counting is pure).

Items are counted by distinct UID of each BEGIN:VCARD, or each VEVENT/VTODO, which is what a
user calls "a contact" or "an event", however the files group them.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {"contacts": ".vcf", "calendars": ".ics"}
_COMPONENTS = {"contacts": ("VCARD",), "calendars": ("VEVENT", "VTODO")}


def count_items(text: str, category: str) -> int:
    """Distinct UIDs of the category's components; a component without UID counts once."""
    wanted = _COMPONENTS[category]
    uids: set[str] = set()
    anonymous = 0
    stack: list[str] = []
    current_uid: list[str | None] = []
    unfolded = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "")
    for raw in unfolded.split("\n"):
        line = raw.strip()
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            stack.append(upper[6:])
            current_uid.append(None)
        elif upper.startswith("END:") and stack:
            comp = stack.pop()
            uid = current_uid.pop()
            if comp in wanted:
                if uid is None:
                    anonymous += 1
                else:
                    uids.add(f"{comp}:{uid}")
        elif upper.startswith("UID") and stack and line[3:4] in (":", ";"):
            current_uid[-1] = line.split(":", 1)[1] if ":" in line else ""
    return len(uids) + anonymous


@dataclass
class SnapshotData:
    tar: bytes = b""
    sha256: str = ""
    files: int = 0
    items: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _members(root: Path, suffix: str) -> Iterator[tuple[Path, str]]:
    """The files a snapshot holds, with their names in it: every .vcf/.ics below a vdir
    folder, or the one file of a file store (a .vcf, .ics, JSON or CSV export), whatever
    its suffix: the configuration named it."""
    if root.is_file():
        yield root, root.name
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            path = Path(dirpath, fname)
            if fname.endswith(suffix) and not path.is_symlink():
                yield path, path.relative_to(root).as_posix()


def take_snapshot(root: Path, category: str) -> SnapshotData:
    """Read a device store (a vdir folder, or a file store's one file) into an uncompressed
    tar with stable member order."""
    suffix = SUFFIXES[category]
    out = SnapshotData()
    buf = io.BytesIO()
    digest = hashlib.sha256()
    texts: list[str] = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, rel in _members(root, suffix):
            try:
                data = path.read_bytes()
                text = data.decode("utf-8")
                mtime = path.stat().st_mtime
            except (OSError, UnicodeDecodeError) as exc:
                out.failed.append((rel, str(exc)))
                continue
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mtime = int(mtime)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            texts.append(text)
            out.files += 1
    out.tar = buf.getvalue()
    out.sha256 = digest.hexdigest()
    out.items = count_items("\n".join(texts), category)
    return out


def tar_digest(tar_bytes: bytes) -> str:
    """The digest `take_snapshot` records, recomputed from the tar (to verify a restore)."""
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar.getmembers():
            fh = tar.extractfile(member) if member.isreg() else None
            data = fh.read() if fh is not None else b""
            digest.update(member.name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()
