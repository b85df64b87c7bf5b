"""Replaying a recorded session (`record.py` made it) and checking recordings for secrets:
shared by the replay tests of the committed sessions and the live ones."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from click.testing import CliRunner

from davsync.app import recording
from davsync.cli import main
from davsync.dav.recording import REDACTED, Replay, read_recording
from tests.recordings import record


def session(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "session.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


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
    recorded = session(folder)
    record.write_device(root)
    config = replay_config(root, recorded)
    for step in recorded["steps"]:
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


def forms(secret: str | bytes) -> set[bytes]:
    """A secret as bytes, base64 (both alphabets), hex and URL-encoded: written here apart
    from the recorder's own list, so that a form it forgets is caught."""
    raw = secret.encode() if isinstance(secret, str) else secret
    text = raw.decode("latin-1")
    return {raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode(),
            quote(text, safe="").encode(), quote_plus(text).encode()}


def assert_no_secret(folder: Path, secrets: list[str | bytes]) -> None:
    """No recording in `folder` holds any form of any secret, nor anything shaped like a JWT
    (ID tokens, access tokens); the redaction did happen."""
    assert secrets and all(secrets)
    recordings = sorted(folder.glob("*.jsonl"))
    assert recordings
    for path in recordings:
        data = path.read_bytes()
        found = [f for secret in secrets for f in forms(secret) if f in data]
        assert not found, f"{path}: holds a secret"
        assert re.search(rb"eyJ[A-Za-z0-9_-]{4,}\.", data) is None, f"{path}: a JWT"
        assert REDACTED.encode() in data


