"""Recorded sessions (tests/recordings/, made by `python -m tests.recordings.record` against real
servers) replayed without any server: the same exit codes, reports and device files as live,
and exactly the recorded requests. A user's recording becomes a test the same way."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from davsync.app import recording
from davsync.app.backup import open_backup_repository
from davsync.app.backup_config import parse_backup
from davsync.config import load_config
from davsync.dav.recording import REDACTED, Replay, read_recording
from tests.recordings import record, replaying

SESSIONS = sorted(p.parent for p in record.HERE.glob("*/session.json"))
_session = replaying.session


def test_the_sessions_the_issue_asks_for_are_recorded() -> None:
    assert {p.name for p in SESSIONS} >= {"first-sync", "reprovision", "backup-restore"}


@pytest.mark.parametrize("folder", SESSIONS, ids=lambda p: p.name)
def test_a_recorded_session_replays_as_it_ran_live(folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAVSYNC_KEYRING", "0")
    replaying.replay_session(folder, tmp_path)


def sse_c_secrets(folder: Path, root: Path) -> list[str | bytes]:
    """The SSE-C key of a recorded backup (from the passphrase and the recorded key-info),
    its MD5, and the passphrase."""
    session = _session(folder)
    config = record.backup_config(root, "keys", session["url"], "replay", "replay-secret")
    restore = next(s for s in session["steps"] if s["args"][0] == "restore")
    with recording.replaying(Replay(read_recording(folder / restore["recording"]))):
        repo = open_backup_repository(parse_backup(load_config(config)), create=False)
    key = repo.keys.sse_c
    md5 = hashlib.md5(key, usedforsecurity=False).digest()
    return [key, md5, base64.b64encode(md5), record.PASSPHRASE]


@pytest.mark.parametrize("folder", SESSIONS, ids=lambda p: p.name)
def test_no_committed_recording_holds_a_secret(folder: Path, tmp_path: Path) -> None:
    secrets: list[str | bytes] = [record.PASSWORD]
    if _session(folder)["kind"] == "backup":
        secrets += sse_c_secrets(folder, tmp_path)
    replaying.assert_no_secret(folder, secrets)


def test_provisioning_answers_are_recorded_without_the_device_password() -> None:
    answers = [json.loads(line) for path in (record.HERE / "reprovision").glob("*.jsonl")
               for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    provisioned = [json.loads(a["response"]["body"]["text"]) for a in answers
                   if a["request"]["method"] == "POST" and a["response"]["status"] == 200]
    assert len(provisioned) == 2  # the first sync's, and the one after the 401
    assert {p["password"] for p in provisioned} == {REDACTED}
    assert all(p["username"] and p["dav_url"] for p in provisioned)
