"""Finding the files to back up: a depth-first walk of each root, symlinks never followed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from davsync.backup.model import ScannedFile

if TYPE_CHECKING:
    pass



class FileChanged(Exception):
    """The file changed while it was being read; the next run picks up the new version."""


def root_labels(roots: list[Path]) -> list[str]:
    """A distinct top-level restore folder per root: its base name, "-2", "-3" on a clash."""
    labels: list[str] = []
    for root in roots:
        base = root.name or "root"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


def scan(roots: dict[str, list[Path]]) -> tuple[list[ScannedFile], list[tuple[str, str, str]]]:
    """Regular files below each root (symlinks and special files are skipped, not followed),
    and (category, path, reason) for what could not be read."""
    found: list[ScannedFile] = []
    errors: list[tuple[str, str, str]] = []
    for category, paths in roots.items():
        for root, label in zip(paths, root_labels(paths), strict=True):
            if not root.is_dir():
                errors.append((category, str(root), "folder not found (check [backup] "
                               f"{category})"))
                continue
            _walk(category, str(root), label, found, errors)
    return found, errors


def _walk(category: str, top: str, prefix: str, found: list[ScannedFile],
          errors: list[tuple[str, str, str]]) -> None:
    """os.scandir, depth first in name order; string joins instead of pathlib, as a no-change
    run over thousands of files spends most of its time here."""
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        errors.append((category, top, exc.strerror or str(exc)))
        return
    for entry in entries:
        name = f"{prefix}/{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                _walk(category, entry.path, name, found, errors)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            errors.append((category, entry.path, exc.strerror or str(exc)))
            continue
        found.append(ScannedFile(category, name, entry.path, st.st_size, st.st_mtime_ns,
                                 st.st_ino))



def same_file(fh: BinaryIO, f: ScannedFile) -> None:
    """FileChanged unless the open file is still the one the scan saw."""
    st = os.fstat(fh.fileno())
    if (st.st_size, st.st_mtime_ns, st.st_ino) != (f.size, f.mtime_ns, f.inode):
        raise FileChanged("changed while being read; it will be backed up on the next run")




def hash_file(path: str, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()

