"""Recordings made now, against real Radicale, `davsync server` and SeaweedFS (the same helper
that made tests/recordings/): none holds a secret the run used (passwords, device passwords,
ID tokens, the passphrase, the SSE-C key, its base64 and MD5, the S3 secret key), and each
replays without servers to the result the live run had."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.recordings import record, replaying


@pytest.mark.parametrize("name", sorted(record.SESSIONS))
def test_a_fresh_recording_has_no_secret_and_replays_like_live(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAVSYNC_KEYRING", "0")
    folder = tmp_path / name
    secrets = record.SESSIONS[name](folder)
    assert len(secrets) >= 1
    replaying.assert_no_secret(folder, [*secrets, record.PASSWORD])
    replaying.replay_session(folder, tmp_path / "replay")
