"""The daemon's backup job: a backup run (or, in restore mode, a restore run) each
`[daemon] backup_interval`, stopped between files or parts by SIGTERM and resumed next run.
A failed run is reported and backed off through the job bookkeeping (`app/jobs.py`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from davsync.app.jobs import Jobs
from davsync.app.notify import Notifier
from davsync.config import Config
from davsync.errors import DavsyncError

if TYPE_CHECKING:
    from davsync.backup.stats import Stats

log = logging.getLogger("davsync.app.daemon")  # the daemon's own log, as before the split


class BackupJob:
    """One backup or restore at a time; `wait_idle()` returns once none is in flight."""

    def __init__(self, config: Callable[[], Config], stopping: threading.Event, jobs: Jobs,
                 notifier: Notifier, after: Callable[[], None]) -> None:
        self._config = config  # read at each run: a reload may have replaced it
        self._stopping = stopping
        self._jobs = jobs
        self._notifier = notifier
        self._after = after  # writes the daemon's status once a run ends, however it ends
        self._lock = threading.Lock()  # held while a run is under way

    def wait_idle(self) -> None:
        """At shutdown: a backup in flight stops at its next file or part."""
        with self._lock:
            pass

    def backup(self) -> None:
        from davsync.app.backup import backup_run
        from davsync.app.backup_config import parse_backup
        from davsync.backup.run import RunOptions

        opts = RunOptions(progress=False, cancel=self._stopping)
        self._transfer("backup", lambda: backup_run(parse_backup(self._config()), opts).run())

    def restore(self) -> None:
        """Restore mode's backup job: what the backup has and the device lacks comes back to
        where it was backed up from; a file that differs is kept (and named in `status`).
        Contacts and calendars come from the DAV server (the pull-only sync) instead."""
        from davsync.app.backup import restore_run
        from davsync.app.backup_config import parse_backup
        from davsync.backup.restore import RestoreOptions
        from davsync.backup.settings import CATEGORIES

        cfg = parse_backup(self._config())
        opts = RestoreOptions(progress=False, in_place=True, cancel=self._stopping)
        self._transfer("restore", lambda: restore_run(cfg, cfg.state_dir, CATEGORIES,
                                                      opts).run())

    def _transfer(self, kind: str, run: Callable[[], Stats]) -> None:
        """Run the backup (or restore) job's run; report it as the backup job."""
        with self._lock:
            self._transfer_locked(kind, run)

    def _transfer_locked(self, kind: str, run: Callable[[], Stats]) -> None:
        from davsync.backup.run import BackupCancelled

        if self._stopping.is_set():
            return
        try:
            stats = run()
        except BackupCancelled:
            log.info("%s: stopped; the next run resumes it", kind)
            return
        except DavsyncError as exc:
            delay = self._jobs.failed("backup", exc, self._config().daemon.backup_interval)
            self._notifier.status(f"{kind} failed: {exc}; next try in {delay:.0f} s")
            return
        except Exception:  # a bug must not end the daemon
            log.exception("%s: unexpected error; trying again at the next run", kind)
            return
        finally:
            self._after()
        self._jobs.succeeded("backup")
        summary = stats.to_json()
        self._notifier.status(f"{kind}: {summary['succeeded_files']}/{summary['total_files']} "
                              f"files ok, {summary['failed_files']} failed")
