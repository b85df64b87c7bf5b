"""The vdir device store: atomic writes, refusing stale writes, unsafe names, leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from davsync.sources.base import SourceError
from davsync.sources.vdir import VdirSource


def test_create_write_delete_with_signatures(tmp_path: Path) -> None:
    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("a b/c", b"one")
    assert "/" not in name and name.endswith(".vcf")
    assert src.scan() == {name: sig}
    sig2 = src.write(name, b"two", sig)
    assert src.read(name) == b"two"
    with pytest.raises(SourceError, match="changed while syncing"):
        src.write(name, b"three", sig)  # stale signature: the user's edit wins
    src.delete(name, sig2)
    assert src.scan() == {}


def test_create_never_replaces_an_existing_file(tmp_path: Path) -> None:
    src = VdirSource(tmp_path, "contacts")
    first, _ = src.create("same", b"1")
    second, _ = src.create("same", b"2")
    assert first != second
    assert src.read(first) == b"1" and src.read(second) == b"2"


@pytest.mark.parametrize("name", ["../escape.vcf", "/etc/passwd", "..", ""])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(SourceError, match="unsafe"):
        VdirSource(tmp_path, "contacts").read(name)


def test_stale_temporary_files_are_cleaned_and_fresh_ones_kept(tmp_path: Path) -> None:
    old = tmp_path / ".davsync-old.tmp"
    new = tmp_path / ".davsync-new.tmp"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert VdirSource(tmp_path, "contacts").scan() == {}
    assert not old.exists() and new.exists()
