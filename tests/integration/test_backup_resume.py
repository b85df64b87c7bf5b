"""kill -9 in the middle of a real `davsync backup`: the next run neither loses nor resends."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from davsync.app.backup import backup_run, restore_run
from tests.fixtures.seaweed import BackupEnv, CountingStore, make_file, restore_opts, run_opts, tree


def wait_for_parts(index: Path, client: object, bucket: str, proc: subprocess.Popen[bytes],
                   timeout: float = 60.0) -> int:
    """Parts stored so far for the upload recorded in the index, once there are at least 2."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "backup finished before it could be interrupted"
        try:
            with sqlite3.connect(index) as db:
                rows = db.execute("SELECT object, upload_id FROM multipart").fetchall()
        except sqlite3.Error:
            rows = []
        for obj, upload_id in rows:
            parts = client.list_parts(Bucket=bucket, Key=f"laptop/{obj}",  # type: ignore[attr-defined]
                                      UploadId=upload_id).get("Parts", [])
            if len(parts) >= 2:
                return len(parts)
        time.sleep(0.02)
    raise AssertionError("no multipart upload progressed")


def test_kill_9_mid_upload_then_resume(backup_env: BackupEnv) -> None:
    backup_env.write_config(extra="part_size_mib = 5\nconcurrency = 1")
    small = [make_file(backup_env.media / "Pictures" / f"p{i}.jpg", 20_000) for i in range(3)]
    backup_run(backup_env.backup_config(), run_opts()).run()           # fast-KDF repository
    big = make_file(backup_env.media / "Videos" / "big2.mp4", 100 << 20)   # 20 parts
    davsync = str(Path(sys.executable).parent / "davsync")
    proc = subprocess.Popen([davsync, "--config", str(backup_env.config_path), "backup", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done_before = wait_for_parts(backup_env.state / "backup.sqlite",
                                     backup_env.bucket.client(), backup_env.bucket.name, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    counting = CountingStore()
    stats = backup_run(backup_env.backup_config(), run_opts(counting)).run().to_json()
    assert stats["failed_files"] == 0
    sent = sorted(n for _, n in counting.parts)
    assert len(sent) == len(set(sent))
    assert len(sent) <= 20 - done_before                     # parts stored before are not resent
    assert counting.data_puts == []                          # the small files were done before
    assert done_before >= 2
    out = backup_env.root / "out"
    restore_run(backup_env.backup_config(), out, ["videos", "images"], restore_opts()).run()
    assert (out / "videos" / "Videos" / "big2.mp4").read_bytes() == big.read_bytes()
    assert set(tree(out / "images")) == {f"Pictures/{p.name}" for p in small}
    uploads = backup_env.bucket.client().list_multipart_uploads(Bucket=backup_env.bucket.name)
    assert not uploads.get("Uploads")
