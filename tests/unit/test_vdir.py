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


def test_entries_named_like_items_that_are_not_files_are_listed_as_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "real.vcf").write_bytes(b"x")
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link.vcf").symlink_to(tmp_path / "target")
    (tmp_path / "folder.vcf").mkdir()
    os.mkfifo(tmp_path / "pipe.vcf")
    (tmp_path / "notes.txt").mkdir()  # not named like an item: none of our business
    src = VdirSource(tmp_path, "contacts")
    assert set(src.scan()) == {"real.vcf"}
    assert {name: why.split(",")[0] for name, why in src.skipped.items()} == {
        "link.vcf": "a symbolic link", "folder.vcf": "a folder", "pipe.vcf": "a named pipe",
    }


def test_a_folder_under_a_file_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(SourceError, match="is not a folder"):
        VdirSource(tmp_path / "file" / "contacts", "contacts").scan()


def test_a_folder_that_refuses_writes_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read-only folder does (simulated: the tests may run as root, who may write)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("a", b"1")
    monkeypatch.setattr(os, "open", refuse)  # the temporary file beside the item
    monkeypatch.setattr(os, "unlink", refuse)
    with pytest.raises(SourceError, match="cannot write: Permission denied"):
        src.create("b", b"2")
    with pytest.raises(SourceError, match="cannot write: Permission denied"):
        src.write(name, b"3", sig)
    with pytest.raises(SourceError, match="cannot delete: Permission denied"):
        src.delete(name, sig)
