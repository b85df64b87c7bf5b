"""`davsync run` logs as `[log] level` and `format` say (-v/-vv win over the level), and
runs once per state directory."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_daemon import DEADLINE, daemon_for
from tests.integration.test_sync_radicale import ROOT

STARTED = "davsync run: started (mode disabled, set by"


def _config(tmp_path: Path, log: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[daemon]\nmode = "disabled"\n'
                      f"[log]\n{log}", encoding="utf-8")
    config.chmod(0o600)
    return config


def _stderr(config: Path, tmp_path: Path, *args: str) -> str:
    with daemon_for(config, tmp_path, *args) as (proc, _notes):
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
    return err


def test_level_info_and_format_journal_are_used(tmp_path: Path) -> None:
    err = _stderr(_config(tmp_path, 'level = "info"\nformat = "journal"\n'), tmp_path)
    line = next(line for line in err.splitlines() if STARTED in line)
    assert line.startswith("<6>davsync run: started")  # journald's priority prefix: info
    assert line.endswith("logger=davsync.app.daemon")


@pytest.mark.parametrize(("log", "args", "shown"), [
    ('level = "warning"\n', (), False),  # the default: no info lines
    ('level = "error"\nformat = "text"\n', ("-v",), True),  # -v wins over the level
])
def test_verbose_flag_overrides_the_level(tmp_path: Path, log: str, args: tuple[str, ...],
                                          shown: bool) -> None:
    err = _stderr(_config(tmp_path, log), tmp_path, *args)
    assert (STARTED in err) is shown, err
    if shown:
        assert f"INFO davsync.app.daemon: {STARTED}" in err


def test_one_daemon_per_state_directory(tmp_path: Path) -> None:
    config = _config(tmp_path, "")
    with daemon_for(config, tmp_path) as (proc, _notes):
        second = subprocess.run(
            [sys.executable, "-m", "davsync.cli", "--config", str(config), "run"],
            capture_output=True, text=True, timeout=DEADLINE, cwd=ROOT)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=DEADLINE)
    assert second.returncode == 3
    assert second.stderr == (f"davsync: davsync run is already running on the state directory "
                             f"{tmp_path / 'state'} (process {proc.pid}); one daemon per state "
                             "directory\n")
