"""`daemon.json`: what `davsync run` last said (pid, mode, schedule, runs), for `davsync
status`, which cannot ask the daemon's scheduler."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from davsync.runstatus import write_daemon_status

log = logging.getLogger("davsync.app.daemon")  # the daemon's own log, as before the split


class DaemonStatus:
    """Writes the status file; remembers when the daemon started."""

    def __init__(self) -> None:
        self.started = datetime.now(UTC)

    def write(self, state_dir: Path, *, running: bool, mode: str, mode_source: str,
              next_runs: dict[str, datetime | None], sync_runs: int) -> None:
        """A file that cannot be written is only warned of: the daemon runs on."""
        jobs = {name: {"next_run": _iso(when)} for name, when in next_runs.items()}
        try:
            write_daemon_status(state_dir, {
                "pid": os.getpid(), "started": _iso(self.started), "running": running,
                "mode": mode, "mode_source": mode_source, "jobs": jobs,
                "sync_runs": sync_runs,
            })
        except OSError as exc:
            log.warning("cannot write the daemon's status for `davsync status`: %s", exc)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds")
