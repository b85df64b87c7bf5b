"""Recorded sessions (tests/recordings/, made by `python -m tests.recordings.record` against real
servers) replayed without any server: the same exit codes, reports and device files as live,
and exactly the recorded requests. A user's recording becomes a test the same way."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from davsync.app import recording
from davsync.cli import main
from davsync.dav.recording import REDACTED, Replay, read_recording, secret_forms
from tests.recordings import record

SESSIONS = sorted(p.parent for p in record.HERE.glob("*/session.json"))


def _session(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "session.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_the_sessions_the_issue_asks_for_are_recorded() -> None:
    assert {p.name for p in SESSIONS} >= {"first-sync", "reprovision", "backup-restore"}


def replay_config(root: Path, session: dict[str, Any]) -> Path:
    """A config like the recorded run's, without its secrets: replay needs none."""
    if session["kind"] == "provision":
        return record.provision_config(root, session["url"], f"{sys.executable} -c print(12345)")
    if session["kind"] == "backup":
        record.write_media(root)
        # The passphrase is needed: the replayed answers are the recorded ciphertext.
        return record.backup_config(root, "fresh", session["url"], "replay", "replay-secret")
    return record.basic_config(root, session["url"], "not-the-recorded-password")


def replay_session(folder: Path, root: Path) -> None:
    """Run the recorded session's commands against its recording; assert what live gave."""
    session = _session(folder)
    record.write_device(root)
    config = replay_config(root, session)
    for step in session["steps"]:
        if not step.get("replay", True):
            continue
        args = [a.replace("{root}", str(root)) for a in step["args"]]
        replay = Replay(read_recording(folder / step["recording"]))
        with recording.replaying(replay):
            result = CliRunner().invoke(main, ["--config", str(config), *args])
        assert replay.mismatches == [], result.output
        assert replay.unused() == [], "recorded requests the replay did not send"
        assert result.exit_code == step["exit"], result.output
        if step["report"] is not None:
            assert json.loads(result.stdout) == step["report"]
        assert record.device_files(root) == step["device"]


@pytest.mark.parametrize("folder", SESSIONS, ids=lambda p: p.name)
def test_a_recorded_session_replays_as_it_ran_live(folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAVSYNC_KEYRING", "0")
    replay_session(folder, tmp_path)


@pytest.mark.parametrize("folder", SESSIONS, ids=lambda p: p.name)
def test_no_committed_recording_holds_a_secret(folder: Path) -> None:
    forms = secret_forms(record.PASSWORD)
    for path in folder.glob("*.jsonl"):
        data = path.read_bytes()
        assert not [f for f in forms if f in data], path
        assert b"eyJ" not in data, f"{path}: something shaped like a JWT"
        assert REDACTED.encode() in data  # the Authorization headers, at least
