"""The server's signal handlers are in place before its socket listens.

A client (or a supervisor sending SIGHUP after a certificate renewal) can reach the server from
the moment it listens; a SIGHUP that arrived before the handler was installed ended the process
with an empty log (seen once in a full test run: test_sighup_reloads_a_renewed_certificate)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from davsync.errors import ConfigError
from davsync.server import serve


def test_signal_handlers_are_installed_before_the_socket_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[int, Any] = {}

    def listening(settings: Any, app: Any) -> Any:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            seen[sig] = signal.getsignal(sig)
        raise ConfigError("stop here")

    monkeypatch.setattr(serve, "ServerApp", lambda settings: object())
    monkeypatch.setattr(serve, "make_server", listening)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    with pytest.raises(ConfigError):
        serve.run(Path("unused"))  # type: ignore[arg-type]
    assert seen[signal.SIGHUP] not in (signal.SIG_DFL, before[signal.SIGHUP])
    assert seen[signal.SIGTERM] not in (signal.SIG_DFL, before[signal.SIGTERM])
    # and a failed start gives the handlers back
    assert {sig: signal.getsignal(sig) for sig in before} == before
