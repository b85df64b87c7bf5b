"""The last failed sync's record: written on a refusal or an unreachable server, kept through
configuration errors, removed by a run that gets through; and how `auth_status` shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from davsync.app.credentials import auth_status
from davsync.cli import main
from davsync.config import load_config
from davsync.dav.api import DavAuthError, DavUnreachable
from davsync.errors import ConfigError
from davsync.runstatus import FAILURE_FILE, last_failure, record_outcome

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_refusal_is_kept_until_a_run_gets_through(tmp_path: Path) -> None:
    record_outcome(tmp_path, DavAuthError("refused the credentials of user 'a'"), WHEN)
    assert last_failure(tmp_path) == {
        "state": "login_refused", "when": "2026-01-02T03:04:05+00:00",
        "reason": "refused the credentials of user 'a'", "exit_code": 3,
    }
    assert (tmp_path / FAILURE_FILE).stat().st_mode & 0o777 == 0o600
    record_outcome(tmp_path, ConfigError("a typo"))  # says nothing about the server
    assert last_failure(tmp_path) is not None
    record_outcome(tmp_path, None)
    assert last_failure(tmp_path) is None
    record_outcome(tmp_path, None)  # nothing to remove: fine


def test_unreachable_server(tmp_path: Path) -> None:
    record_outcome(tmp_path, DavUnreachable("could not connect"), WHEN)
    failure = last_failure(tmp_path)
    assert failure is not None and failure["state"] == "unreachable"


def test_auth_status_shows_a_refused_login_instead_of_signed_in(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nurl = "http://x/"\nusername = "a"\n[state]\ndir = "{tmp_path}"\n')
    config = load_config(path)
    assert auth_status(config)["state"] == "signed_in"
    record_outcome(tmp_path, DavAuthError("refused"), WHEN)
    status = auth_status(config)
    assert (status["state"], status["reason"], status["when"], status["signed_in"]) == (
        "login_refused", "refused", "2026-01-02T03:04:05+00:00", False)


def test_whoami_in_basic_mode_agrees_with_status_about_a_refused_login(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nurl = "http://x/"\nusername = "a"\n[state]\ndir = "{tmp_path}"\n')
    shown = CliRunner().invoke(main, ["--config", str(path), "whoami"])
    assert (shown.exit_code, shown.output) == (0, "Using basic auth as a at http://x/.\n")
    record_outcome(tmp_path, DavAuthError("http://x refused the credentials of user 'a'"), WHEN)
    shown = CliRunner().invoke(main, ["--config", str(path), "whoami"])
    assert (shown.exit_code, shown.output) == (1, (
        "Using basic auth as a at http://x/.\n"
        "The server refused this login at 2026-01-02T03:04:05+00:00: http://x refused the "
        "credentials of user 'a'. The next sync that gets through clears this.\n"))
    record_outcome(tmp_path, None)  # a run got through
    assert CliRunner().invoke(main, ["--config", str(path), "whoami"]).exit_code == 0
