"""`--record-http DIR` and replay: which tap, if any, this process puts on its HTTP clients.

The composition root builds every client (DAV, provisioning, device grant, S3); each asks
here for the wrapper to slot into its seam: `http_client(wrap=...)` for httpx, botocore's
`before-send` event for S3. A recording (`dav/recording.py`) writes every exchange to a file;
a replay (tests) answers every exchange from one, so a recorded run runs again without servers.
One tap per process, set once at start (the CLI's global option), like the logging setup.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from davsync.errors import ConfigError

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_s3 import S3Client

    from davsync.dav.recording import Recorder, Replay

    TransportWrapper = Callable[[httpx.BaseTransport], httpx.BaseTransport]

_recorder: Recorder | None = None
_replay: Replay | None = None


def start(directory: Path) -> Recorder:
    """Record this process's exchanges into a new file in `directory`."""
    global _recorder
    from davsync.dav.recording import Recorder

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        _recorder = Recorder(directory / f"davsync-http-{stamp}-{os.getpid()}.jsonl")
    except OSError as exc:
        raise ConfigError(f"--record-http {directory}: cannot write there ({exc.strerror}); "
                          "give a writable folder") from None
    return _recorder


def stop() -> None:
    global _recorder
    if _recorder is not None:
        _recorder.close()
        _recorder = None


def active() -> bool:
    """Whether exchanges are recorded or replayed (the early probe then stays off: it does
    not go through httpx, and the main client sends the same request instead)."""
    return _recorder is not None or _replay is not None


def add_secret(secret: str | bytes | None) -> None:
    """A secret the recording must never contain, in any form, wherever it shows up."""
    if _recorder is not None and secret:
        _recorder.redactor.add_secret(secret)


def transport_wrapper(via: str) -> TransportWrapper | None:
    """For `http_client(wrap=...)`; `via` names the client in the recording (dav, provision)."""
    if _replay is not None:
        replay = _replay
        return lambda _network: replay.transport(via)
    if _recorder is not None:
        return _recorder.transport_wrapper(via)
    return None


def watch_s3(client: S3Client) -> None:
    """Record or replay this S3 client's exchanges, when that was asked for."""
    if _replay is not None:
        from davsync.backup.s3record import replay_s3

        replay_s3(client, _replay)
    elif _recorder is not None:
        from davsync.backup.s3record import record_s3

        record_s3(client, _recorder)


@contextmanager
def replaying(replay: Replay) -> Iterator[Replay]:
    """Answer every exchange of the clients built meanwhile from `replay` (tests)."""
    global _replay
    _replay = replay
    try:
        yield replay
    finally:
        _replay = None
