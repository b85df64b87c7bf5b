"""`davsync run`'s backup job as a real subprocess against a real SeaweedFS: SIGTERM in the
middle of a backup, and restore mode bringing back what the device lost. Waits poll with
bounded deadlines; nothing asserts speed."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fixtures.seaweed import BackupEnv
from tests.integration.test_daemon import DEADLINE, _poll, daemon_for
from tests.integration.test_sync_radicale import ROOT

FILES = 100  # of 1 MiB each: each its own object (over the pack size), sent 4 at a time


def _daemon_config(env: BackupEnv, mode: str) -> None:
    env.write_config(extra=f'[daemon]\nmode = "{mode}"\nbackup_interval = 3600\njitter = 0\n')


def _data_objects(env: BackupEnv) -> int:
    """Stored data objects; 0 while the daemon has not created the bucket yet."""
    client = env.bucket.client()
    if env.bucket.name not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        return 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=env.bucket.name,
                                                             Prefix="laptop/data/")
    return sum(len(page.get("Contents", [])) for page in pages)


def _davsync(env: BackupEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "davsync.cli", "--config", str(env.config_path), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_sigterm_during_a_backup_exits_cleanly_and_the_next_run_completes_it(
    backup_env: BackupEnv, tmp_path: Path
) -> None:
    docs = backup_env.media / "Documents"
    for n in range(FILES):
        (docs / f"file-{n:03d}.bin").write_bytes(os.urandom(1 << 20))
    _daemon_config(backup_env, "backup")
    with daemon_for(backup_env.config_path, tmp_path) as (proc, notes):
        _poll(lambda: _data_objects(backup_env) > 0)  # it is uploading
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        notes.wait_for(lambda line: line == "STOPPING=1")
    stopped_at = _data_objects(backup_env)
    assert stopped_at < FILES  # it stopped before the backup could have finished
    done = _davsync(backup_env, "backup", "-q")
    assert done.returncode == 0, done.stderr
    assert _data_objects(backup_env) >= FILES
    out = tmp_path / "out"
    restored = _davsync(backup_env, "restore", "-q", "--to", str(out))
    assert restored.returncode == 0, restored.stderr
    compare = filecmp.dircmp(docs, out / "documents" / "Documents")
    assert sorted(compare.same_files) == sorted(p.name for p in docs.iterdir())
    assert not compare.diff_files and not compare.left_only and not compare.right_only


def test_restore_mode_brings_back_missing_files_and_keeps_changed_ones(
    backup_env: BackupEnv, tmp_path: Path
) -> None:
    pics = backup_env.media / "Pictures"
    (pics / "lost.jpg").write_bytes(b"lost picture" * 1000)
    (pics / "edited.jpg").write_bytes(b"old picture" * 1000)
    (pics / "kept.jpg").write_bytes(b"kept picture" * 1000)
    backed_up = _davsync(backup_env, "backup", "-q")
    assert backed_up.returncode == 0, backed_up.stderr
    lost = (pics / "lost.jpg").read_bytes()
    (pics / "lost.jpg").unlink()
    (pics / "edited.jpg").write_bytes(b"new picture")
    _daemon_config(backup_env, "restore")
    with daemon_for(backup_env.config_path, tmp_path) as (proc, notes):
        said = notes.wait_for(lambda line: line.startswith("STATUS=restore"))
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
    assert said.startswith("STATUS=restore: 2/3 files ok"), said
    assert (pics / "lost.jpg").read_bytes() == lost
    assert (pics / "edited.jpg").read_bytes() == b"new picture"  # changed: kept, not replaced
    status = _davsync(backup_env, "status")
    assert "edited.jpg: skipped: differs from the backup" in status.stdout
