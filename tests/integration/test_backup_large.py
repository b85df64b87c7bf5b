"""A multi-GB file streams through backup and restore with bounded memory (real processes).

2 GiB by default (about 40 s here); DAVSYNC_TEST_LARGE_GIB=3 for more."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.seaweed import BackupEnv

SIZE = int(os.environ.get("DAVSYNC_TEST_LARGE_GIB", "2")) << 30
# Streaming, not a speed/size target: memory must stay far below the file's size whatever the
# machine's load (under `pytest -n 2` parts queue longer). The 150 MB target is measured by
# benchmarks/backup_bench.py, where targets belong.
PEAK_RSS_LIMIT = 320 << 20


def run_measured(args: list[str]) -> tuple[int, int, str]:
    """(exit code, peak RSS in bytes, output) of one davsync process."""
    davsync = str(Path(sys.executable).parent / "davsync")
    proc = subprocess.Popen([davsync, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    with proc.stdout:
        output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, output


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("mode", ["client"])
def test_multi_gb_sparse_file_round_trip_with_bounded_memory(backup_env: BackupEnv,
                                                             mode: str) -> None:
    backup_env.write_config(mode)
    big = backup_env.media / "Videos" / "huge.mkv"
    with big.open("wb") as fh:
        fh.write(b"start")
        fh.truncate(SIZE)           # sparse: no disk used, but every byte is read and sent
        fh.seek(SIZE - 3)
        fh.write(b"end")
    config = ["--config", str(backup_env.config_path)]
    started = time.monotonic()
    code, backup_rss, output = run_measured([*config, "backup", "-q"])
    backup_seconds = time.monotonic() - started
    assert code == 0, output
    assert backup_rss < PEAK_RSS_LIMIT, f"backup peak RSS {backup_rss >> 20} MiB"
    out = backup_env.root / "out"
    code, restore_rss, output = run_measured([*config, "restore", "-q", "--to", str(out)])
    assert code == 0, output
    assert restore_rss < PEAK_RSS_LIMIT, f"restore peak RSS {restore_rss >> 20} MiB"
    restored = out / "videos" / "Videos" / "huge.mkv"
    assert restored.stat().st_size == SIZE
    assert restored.stat().st_mtime_ns == big.stat().st_mtime_ns
    assert sha256_file(restored) == sha256_file(big)
    print(f"\n{SIZE >> 20} MiB: backup {backup_seconds:.1f} s, peak RSS backup "
          f"{backup_rss >> 20} MiB, restore {restore_rss >> 20} MiB")
