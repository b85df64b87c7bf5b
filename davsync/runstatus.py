"""Why the last sync could not talk to the server, kept until a later run can.

A run stopped by a refused login or an unreachable server leaves `last-failure.json` in the
state directory; `davsync status` shows it (and exits with the run's code) until a run gets
through. A run that succeeds only removes the file, so the common case costs one `unlink`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from davsync.errors import AuthError, DavsyncError, UnreachableError
from davsync.fsutil import write_atomic

log = logging.getLogger(__name__)

FAILURE_FILE: Final = "last-failure.json"
DAEMON_FILE: Final = "daemon.json"  # what `davsync run` last said: mode, schedule, runs
REFUSED: Final = "login_refused"
UNREACHABLE: Final = "unreachable"


def record_outcome(state_dir: Path, fatal: DavsyncError | None, now: datetime | None = None
                   ) -> None:
    """After a sync: remember a refusal or an unreachable server, forget it on success.

    Other fatal errors (a configuration mistake) say nothing about the server: the record, if
    any, is left as it was."""
    path = state_dir / FAILURE_FILE
    if fatal is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    if not isinstance(fatal, UnreachableError):
        return
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    state = REFUSED if isinstance(fatal, AuthError) else UNREACHABLE
    body = {"state": state, "when": when, "reason": str(fatal), "exit_code": fatal.exit_code}
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())


def last_failure(state_dir: Path) -> dict[str, Any] | None:
    """The failure the last run left, or None when it got through (or never ran)."""
    try:
        data = json.loads((state_dir / FAILURE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("%s: unreadable, ignoring it", state_dir / FAILURE_FILE)
        return None
    return data if isinstance(data, dict) and "state" in data else None


def write_daemon_status(state_dir: Path, status: dict[str, Any]) -> None:
    """The daemon's mode and schedule (`davsync status` cannot ask its scheduler)."""
    status = {**status, "updated": datetime.now(UTC).isoformat(timespec="seconds")}
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(state_dir / DAEMON_FILE,
                 (json.dumps(status, indent=1, sort_keys=True) + "\n").encode())


def daemon_status(state_dir: Path) -> dict[str, Any] | None:
    """What the daemon last wrote, or None when it never ran here."""
    try:
        data = json.loads((state_dir / DAEMON_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("%s: unreadable, ignoring it", state_dir / DAEMON_FILE)
        return None
    return data if isinstance(data, dict) else None
