"""Restore's file placement: never replacing a file that appears while the backup's is written,
with or without hard links, and comparing an existing file with the backup's."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from davsync.backup.restore import same_content, write_verified

DATA = b"the backup's bytes"
SHA = hashlib.sha256(DATA).hexdigest()


def racing(target: Path) -> Iterator[bytes]:
    """The backup's bytes, with the user saving `target` half-way through the download."""
    yield DATA[:5]
    target.write_bytes(b"saved by the user meanwhile")
    yield DATA[5:]


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_file_created_while_writing_is_never_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool) -> None:
    if not hard_links:
        def no_links(src: object, dst: object) -> None:
            raise PermissionError(1, "Operation not permitted")
        monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "a.txt"
    with pytest.raises(FileExistsError):
        write_verified(target, racing(target), len(DATA), SHA, 0, overwrite=False)
    assert target.read_bytes() == b"saved by the user meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]          # no temporary left


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_free_name_gets_the_file_and_its_mtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool) -> None:
    if not hard_links:
        def no_links(src: object, dst: object) -> None:
            raise OSError(95, "Operation not supported")
        monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "a.txt"
    write_verified(target, [DATA], len(DATA), SHA, 1_000_000_000, overwrite=False)
    assert target.read_bytes() == DATA and target.stat().st_mtime_ns == 1_000_000_000
    assert target.stat().st_nlink == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_overwrite_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    write_verified(target, [DATA], len(DATA), SHA, 0)
    assert target.read_bytes() == DATA


def test_same_content_needs_same_size_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(DATA)
    assert same_content(path, len(DATA), SHA)
    path.write_bytes(DATA.upper())                                      # same size
    assert not same_content(path, len(DATA), SHA)
    path.write_bytes(DATA + b"!")
    assert not same_content(path, len(DATA), SHA)


def test_same_content_never_follows_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(DATA)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        same_content(tmp_path / "link", len(DATA), SHA)
