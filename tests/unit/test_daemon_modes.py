"""Which jobs `davsync run` schedules for each `[daemon] mode` (no server is contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from davsync.app.daemon import Daemon
from davsync.app.notify import Notifier
from davsync.config import load_config


def _daemon(tmp_path: Path, mode: str) -> Daemon:
    (tmp_path / "contacts").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\nurl = "http://127.0.0.1:9/"\nusername = "u"\npassword = "p"\n'
        f'[device]\ncontacts = "{tmp_path / "contacts"}"\n[state]\ndir = "{tmp_path / "s"}"\n'
        f'[daemon]\nmode = "{mode}"\n', encoding="utf-8")
    config.chmod(0o600)
    return Daemon(load_config(config), Notifier(None))


@pytest.mark.parametrize(("mode", "jobs", "syncs"), [
    ("both", ["sync"], True), ("backup", [], False), ("restore", ["sync"], True),
    ("disabled", [], False),
])
def test_modes_both_and_restore_sync(tmp_path: Path, mode: str, jobs: list[str],
                                     syncs: bool) -> None:
    daemon = _daemon(tmp_path, mode)
    try:
        daemon._apply(daemon.config)
        assert [job.id for job in daemon._jobs.scheduler.get_jobs()] == jobs
        assert (daemon._service is not None) is syncs
    finally:
        daemon._stop_watcher()
