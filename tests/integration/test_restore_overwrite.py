"""A second restore into the same folder, against a real SeaweedFS: what the user changed since
the first restore is kept and named (exit 1) unless `--overwrite`; identical files are left
alone, not downloaded and not rewritten."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from davsync.app.backup import backup_run, restore_run
from davsync.backup.restore import RestoreOptions
from davsync.backup.store import BlobStore
from davsync.cli import main
from davsync.errors import EXIT_ITEMS_FAILED
from tests.fixtures.seaweed import KDF, BackupEnv, make_file, run_opts

MODES = ["client", "sse-c"]
VCARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Ann\r\nEND:VCARD\r\n"
SKIP_HINT = "move it away or restore with --overwrite to replace it"


def cli(env: BackupEnv, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(env.config_path), *args])
    return result.exit_code, result.output


def backed_up(env: BackupEnv) -> Path:
    """Back up a packed photo, a large (streamed) video, a document and a contacts snapshot;
    restore them once into the returned folder."""
    make_file(env.media / "Pictures" / "small.jpg", 5000)
    make_file(env.media / "Videos" / "large.mp4", 3 << 20)
    make_file(env.media / "Documents" / "notes.txt", 100)
    (env.contacts / "book").mkdir()
    (env.contacts / "book" / "ann.vcf").write_bytes(VCARD)
    backup_run(env.backup_config(), run_opts()).run()
    out = env.root / "out"
    code, output = cli(env, "restore", "-q", "--to", str(out))
    assert code == 0, output
    return out


class CountingGets:
    """Counts the data downloads a restore makes (ranged GETs of packs, streams of files)."""

    inner: BlobStore

    def __init__(self) -> None:
        self.gets: list[str] = []

    def __getattr__(self, name: str) -> object:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def get_range(self, name: str, start: int, length: int) -> bytes:
        self.gets.append(name)
        return self.inner.get_range(name, start, length)

    def stream(self, name: str, chunk_size: int) -> object:
        self.gets.append(name)
        return self.inner.stream(name, chunk_size)

    def wrap(self, inner: BlobStore) -> BlobStore:
        self.inner = inner
        return self  # type: ignore[return-value]


@pytest.mark.parametrize("mode", MODES)
def test_second_restore_keeps_what_the_user_changed_names_it_and_exits_1(
        backup_env: BackupEnv, mode: str) -> None:
    backup_env.write_config(mode)
    out = backed_up(backup_env)
    notes = out / "documents" / "Documents" / "notes.txt"
    video = out / "videos" / "Videos" / "large.mp4"
    contact = out / "contacts" / "book" / "ann.vcf"
    notes.write_bytes(b"x" * 100)                      # same size: only the hash tells
    video.write_bytes(b"edited")
    contact.write_bytes(VCARD.replace(b"Ann", b"Eve"))
    (out / "images" / "Pictures" / "small.jpg").unlink()  # removed: simply restored again

    code, output = cli(backup_env, "restore", "-q", "--to", str(out))
    assert code == EXIT_ITEMS_FAILED
    assert notes.read_bytes() == b"x" * 100 and video.read_bytes() == b"edited"
    assert contact.read_bytes() == VCARD.replace(b"Ann", b"Eve")
    for name in ("documents: documents/Documents/notes.txt: skipped: differs from the backup",
                 "videos: videos/Videos/large.mp4: skipped: differs from the backup",
                 "contacts: contacts/book/ann.vcf: skipped: differs from the backup"):
        assert name in output
    assert output.count(SKIP_HINT) == 3
    assert "restore: 1/4 files ok, 0 failed, 3 skipped" in output
    assert (out / "images" / "Pictures" / "small.jpg").stat().st_size == 5000

    code, output = cli(backup_env, "status", "--json")
    restore = json.loads(output)["backup"]["restore"]
    assert restore["skipped_files"] == 3 and restore["failed_files"] == 0
    documents = restore["categories"]["documents"]
    assert documents["skipped_files"] == 1
    assert documents["skipped"] == [{"path": "documents/Documents/notes.txt",
                                     "reason": f"differs from the backup; {SKIP_HINT}"}]
    assert code == EXIT_ITEMS_FAILED  # status says so until a later restore gets through

    code, output = cli(backup_env, "status")
    assert code == EXIT_ITEMS_FAILED
    assert re.search(r"^restore: completed at \S+: 1/4 files ok, 0 failed, 3 skipped, ", output,
                     re.MULTILINE)
    assert ("  documents: documents/Documents/notes.txt: skipped: differs from the backup"
            in output)
    assert "backup: completed at " in output and '"categories"' not in output


@pytest.mark.parametrize("mode", MODES)
def test_overwrite_replaces_what_differs(backup_env: BackupEnv, mode: str) -> None:
    backup_env.write_config(mode)
    out = backed_up(backup_env)
    original = (out / "documents" / "Documents" / "notes.txt").read_bytes()
    (out / "documents" / "Documents" / "notes.txt").write_bytes(b"changed")
    (out / "contacts" / "book" / "ann.vcf").write_bytes(b"changed")
    (out / "videos" / "Videos" / "large.mp4").write_bytes(b"changed")

    code, output = cli(backup_env, "restore", "-q", "--overwrite", "--to", str(out))
    assert code == 0, output
    assert (out / "documents" / "Documents" / "notes.txt").read_bytes() == original
    assert (out / "contacts" / "book" / "ann.vcf").read_bytes() == VCARD
    assert (out / "videos" / "Videos" / "large.mp4").stat().st_size == 3 << 20
    assert "skipped" not in output.replace("0 skipped", "")


def test_identical_files_are_left_alone_not_downloaded_nor_rewritten(
        backup_env: BackupEnv) -> None:
    out = backed_up(backup_env)
    files = [p for p in out.rglob("*") if p.is_file()]
    for path in files:
        os.utime(path, ns=(1, 1_000_000_000))         # a rewrite would restore the backup's
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    counting = CountingGets()
    for overwrite in (False, True):
        stats = restore_run(backup_env.backup_config(), out, opts=RestoreOptions(
            kdf=KDF, wrap=counting.wrap, progress=False, overwrite=overwrite)).run().to_json()
        assert stats["succeeded_files"] == stats["total_files"] == 4
        assert stats["unchanged_files"] == 4 and stats["bytes_processed"] == 0
    assert counting.gets == []                         # (the contacts snapshot is one GET)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == before
