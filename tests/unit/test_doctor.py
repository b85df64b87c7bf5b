"""The doctor's frame: a group that overruns its deadline or breaks still gives its lines,
and the exit code follows the worst line."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from davsync.app.doctor import FAIL, NOTE, OK, Check, Found, Report, run_doctor, run_group


def test_a_group_that_hangs_keeps_what_it_found_and_says_it_stopped() -> None:
    release = threading.Event()

    def group(found: Found) -> None:
        found.ok("server", "answers")
        release.wait()
        found.ok("late", "never reported")

    try:
        checks = run_group("server", group, deadline=0.05)
    finally:
        release.set()
    assert checks == [
        Check("server", OK, "answers"),
        Check("server", FAIL, "no answer within 0.05 s; the checks after the last line above "
              "did not finish (a server that does not answer?)"),
    ]


def test_a_check_that_breaks_is_a_failing_line_not_a_traceback() -> None:
    def group(found: Found) -> None:
        found.note("state", "fine")
        raise KeyError("x")

    assert run_group("state", group) == [
        Check("state", NOTE, "fine"), Check("state", FAIL, "the check stopped: KeyError: 'x'")]


def test_exit_code_and_lines() -> None:
    report = Report([Check("a", OK, "fine"), Check("b", NOTE, "by the way")])
    assert report.exit_code == 0
    report.checks.append(Check("c", FAIL, "broken; fix it"))
    assert report.exit_code == 1
    assert [c.line() for c in report.checks] == [
        "ok   a: fine", "note b: by the way", "FAIL c: broken; fix it"]
    report.config_unreadable = True
    assert report.exit_code == 2
    assert report.as_json()["checks"][2] == {"check": "c", "status": "fail",
                                             "detail": "broken; fix it"}


def test_a_config_without_server_or_backup_says_so(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n', encoding="utf-8")
    report = run_doctor(config)
    assert report.exit_code == 0
    assert {c.name: c.status for c in report.checks} == {
        "config": OK, "device": NOTE, "state": OK, "systemd": NOTE, "daemon": NOTE,
        "server": NOTE, "backup": NOTE}
    assert report.checks[-2:] == [
        Check("server", NOTE, f"{config} has no [server] section: nothing is synced"),
        Check("backup", NOTE, f"{config} has no [backup] section: nothing is backed up")]
