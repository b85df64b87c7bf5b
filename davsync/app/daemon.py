"""`davsync run`: one process that keeps the configured collections and the backup up to date.

Three kinds of thread, so that none waits for another's work:
- APScheduler's jobs say *when*: a sync every `[daemon] sync_interval`, a backup every
  `backup_interval`, each with jitter, one instance at a time, missed runs coalesced. The
  sync job only asks for a run (`_sync_wanted`), so a request never gets lost because a run
  is already under way (max_instances would drop it).
- One sync worker does the runs, one after another, through one `SyncService` (one client,
  one connection pool); a device change seen by the watcher asks for a run the same way.
- The main thread waits for signals: SIGTERM/SIGINT stop (the item in flight finishes),
  SIGHUP reloads the configuration; it also pings systemd's watchdog.

Offline is normal: a failed run is logged, shown in systemd's STATUS=, recorded for `davsync
status` (`runstatus`), and the next run waits `core.retry.backoff` of the interval: the
interval after one failure, twice it after two, up to `MAX_BACKOFF`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from davsync.app.credentials import mode_in_force
from davsync.app.notify import Notifier
from davsync.app.sync import SyncService, collection_kinds, configured_collections
from davsync.app.watch import DeviceWatcher
from davsync.config import Config, load_config
from davsync.config.schema import DaemonMode
from davsync.core.retry import backoff
from davsync.errors import DavsyncError
from davsync.runstatus import record_outcome, write_daemon_status
from davsync.state.lock import state_lock
from davsync.sync.values import SyncResult

if TYPE_CHECKING:
    from davsync.backup.stats import Stats

log = logging.getLogger(__name__)

# The longest a failing job waits before it tries again: a server back after a night is
# seen within the hour, and a refusing server is asked at most once an hour.
MAX_BACKOFF = 3600.0
# How often the main thread wakes without a watchdog asking: a signal's work is done then.
_IDLE_WAKE = 30.0


class BackupStopped(Exception):
    """A backup or restore job stopped early by SIGTERM: its work is resumed next run."""


@dataclass
class Heartbeat:
    """Whether the sync worker is making progress, for systemd's watchdog: a run counts as
    hung once neither it started nor a request was made for `bound` seconds. A request never
    takes longer than `[server] request_timeout`, so a bound of several of them is only
    reached by a run that is stuck; pinging then stops and systemd restarts the daemon."""

    bound: float
    busy_since: float | None = None
    requests: int = 0
    last_request: float = 0.0

    def started(self, now: float) -> None:
        self.busy_since = now

    def finished(self) -> None:
        self.busy_since = None

    def alive(self, now: float, requests: int) -> bool:
        """Pure but for remembering the request count seen: True while idle or progressing."""
        if requests != self.requests:
            self.requests, self.last_request = requests, now
        if self.busy_since is None:
            return True
        return now - max(self.busy_since, self.last_request) < self.bound


def hung_bound(config: Config) -> float:
    """How long a sync run may go without a request before it counts as hung: every retry
    of one request taking its whole `request_timeout`, and once more."""
    if not config.has_server():
        return float("inf")
    server = config.server
    return (server.max_retries + 2) * server.request_timeout


class Daemon:
    """Runs until `stop()` (SIGTERM/SIGINT); `run()` returns the exit code (0)."""

    def __init__(self, config: Config, notifier: Notifier) -> None:
        self.config = config
        self.notifier = notifier
        self.stopping = threading.Event()  # also the running sync's cancel: stops between items
        self._wake = threading.Event()
        self._reload_asked = False
        self._sync_wanted = threading.Event()
        self._service_lock = threading.Lock()  # a run against a reload swapping the service
        self._service: SyncService | None = None
        self._failures = {"sync": 0, "backup": 0}
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._worker = threading.Thread(target=self._sync_worker, name="davsync-sync")
        self._watcher: DeviceWatcher | None = None
        self.mode, self.mode_source = mode_in_force(config)
        self.sync_runs = 0
        self.heartbeat = Heartbeat(hung_bound(config))
        self._told_hung = False
        self._started = _now()
        self._transfer_lock = threading.Lock()  # held by the backup job while it runs

    # --- life cycle -------------------------------------------------------------------------

    def run(self) -> int:
        """One daemon per state directory: its lock is held for the daemon's life (a second
        `davsync run` on the same state waits a few seconds, then is told and exits 3)."""
        with state_lock(self.config.state_dir, "daemon", busy=_daemon_busy):
            return self._run()

    def _run(self) -> int:
        self._install_signals()
        self._scheduler.start()
        self._apply(self.config)
        self._worker.start()
        self.notifier.ready()
        self.notifier.status(f"running ({self.mode.value})")
        log.info("davsync run: started (mode %s, set by %s)", self.mode.value,
                 self.mode_source)
        try:
            self._main_loop()
        finally:
            self._shut_down()
        return 0

    def stop(self) -> None:
        self.stopping.set()
        self._sync_wanted.set()  # wakes the worker
        self._wake.set()

    def reload(self) -> None:
        self._reload_asked = True
        self._wake.set()

    def _main_loop(self) -> None:
        every = self.notifier.watchdog_ping_every or _IDLE_WAKE
        while not self.stopping.is_set():
            self._wake.wait(every)
            self._wake.clear()
            if self._reload_asked and not self.stopping.is_set():
                self._reload_asked = False
                self._reload()
            self._ping_watchdog()

    def _ping_watchdog(self) -> None:
        """WATCHDOG=1 only while the sync worker is idle or making progress."""
        if self.heartbeat.alive(time.monotonic(), self._requests()):
            self._told_hung = False
            self.notifier.watchdog()
            return
        if not self._told_hung:
            self._told_hung = True
            log.error("sync: no progress for %.0f s; no more watchdog pings, so that systemd "
                      "restarts davsync", self.heartbeat.bound)
            self.notifier.status("sync hung: waiting for the watchdog to restart davsync")

    def _requests(self) -> int:
        service = self._service
        return service.requests if service is not None else 0

    def _shut_down(self) -> None:
        self.notifier.stopping()
        log.info("davsync run: stopping")
        self._stop_watcher()
        # Not shutdown(wait=True): that holds the scheduler's lock while it waits, and a job
        # that asks the scheduler anything (its next run, a backoff) would wait forever.
        self._scheduler.shutdown(wait=False)
        with self._transfer_lock:  # a backup in flight stops at its next file or part
            pass
        self._worker.join()
        if self._service is not None:
            self._service.close()
        self._write_status(running=False)

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    # --- configuration ----------------------------------------------------------------------

    def _reload(self) -> None:
        """SIGHUP: read the file again; a broken one is reported and the running one kept."""
        self.notifier.reloading()
        try:
            new = load_config(self.config.path)
        except DavsyncError as exc:
            log.error("reload: %s; keeping the configuration loaded before", exc)
            self.notifier.status(f"reload failed, old configuration kept: {exc}")
            self.notifier.ready()
            return
        self._apply(new)
        log.info("reload: %s loaded", new.path)
        self.notifier.status(f"configuration reloaded ({new.daemon.mode.value})")
        self.notifier.ready()

    def _apply(self, config: Config) -> None:
        """(Re)build the jobs, the sync service and the watcher from `config` and the mode
        in force (`mode_in_force`: the provisioning server's, else `[daemon] mode`)."""
        mode, source = mode_in_force(config)
        with self._service_lock:
            if self._service is not None:
                self._service.close()
            self.config, self.mode, self.mode_source = config, mode, source
            self.heartbeat.bound = hung_bound(config)
            self._service = SyncService(config, pull_only=mode is DaemonMode.RESTORE) \
                if self._syncs(config, mode) else None
        self._stop_watcher()
        self._schedule(config)
        if self._service is not None and mode is DaemonMode.BOTH:
            self._start_watcher(config)
        if self._service is not None:
            self._sync_wanted.set()  # a run at once: after a start or a change of config
        self._write_status()

    def _syncs(self, config: Config, mode: DaemonMode) -> bool:
        return mode in (DaemonMode.BOTH, DaemonMode.RESTORE) and config.has_server() and bool(
            configured_folders(config))

    def _schedule(self, config: Config) -> None:
        daemon, mode = config.daemon, self.mode
        for job in self._scheduler.get_jobs():
            job.remove()
        if mode is DaemonMode.RESTORE:
            log.info("mode restore (set by %s): server changes are downloaded and missing "
                     "backed-up files restored; nothing is uploaded", self.mode_source)
        if mode is DaemonMode.DISABLED:
            log.info("mode disabled (set by %s): nothing is synced or backed up",
                     self.mode_source)
        if self._service is not None:
            self._add_job("sync", self._sync_wanted.set, daemon.sync_interval, daemon.jitter,
                          first=None)
        if mode in (DaemonMode.BOTH, DaemonMode.BACKUP, DaemonMode.RESTORE) \
                and config.has_section("backup"):
            job = self._restore_job if mode is DaemonMode.RESTORE else self._backup_job
            self._add_job("backup", job, daemon.backup_interval, daemon.jitter, first=_now())

    def _add_job(self, name: str, func: Callable[[], None], interval: float, jitter: float,
                 first: datetime | None) -> None:
        trigger = IntervalTrigger(seconds=interval, jitter=jitter or None, timezone=UTC)
        options: dict[str, Any] = {"next_run_time": first} if first is not None else {}
        self._scheduler.add_job(func, trigger, id=name, name=name, max_instances=1,
                                coalesce=True, misfire_grace_time=None, **options)

    # --- sync -------------------------------------------------------------------------------

    def _sync_worker(self) -> None:
        while True:
            self._sync_wanted.wait()
            if self.stopping.is_set():
                return
            self._sync_wanted.clear()
            with self._service_lock:
                service = self._service
                if service is None:
                    continue
                self.heartbeat.started(time.monotonic())
                try:
                    result = service.run(cancel=self.stopping)
                except Exception:  # a bug must not end the daemon: logged, tried again later
                    log.exception("sync: unexpected error; trying again at the next run")
                    result = SyncResult(fatal=DavsyncError("unexpected error (see the log)"))
                finally:
                    self.heartbeat.finished()
            self._after_sync(result)

    def _after_sync(self, result: SyncResult) -> None:
        """Record the run (backoff after a failure, the status file) before telling systemd,
        so that whoever reads STATUS= finds `davsync status` up to date."""
        record_outcome(self.config.state_dir, result.fatal)
        self.sync_runs += 1
        log.info("sync run %d done", self.sync_runs)
        delay = None if result.fatal is None else self._failed("sync", result.fatal)
        if delay is None:
            self._failures["sync"] = 0
        self._write_status()
        self._report_sync(result, delay)
        mode, source = mode_in_force(self.config)
        if (mode, source) != (self.mode, self.mode_source) and not self.stopping.is_set():
            log.info("mode %s (set by %s) from now on", mode.value, source)
            self._apply(self.config)  # provisioning (in that run) changed the mode

    def _report_sync(self, result: SyncResult, delay: float | None) -> None:
        when = _now().strftime("%H:%M:%S")
        if result.fatal is not None:
            self.notifier.status(f"sync failed at {when}: {result.fatal}; "
                                 f"next try in {delay:.0f} s")
            return
        summary = "; ".join(f"{name}: {report.summary()}"
                            for name, report in result.collections.items())
        for name, report in result.collections.items():
            for err in report.errors:
                log.error("sync %s: %s: %s", name, err["item"], err["reason"])
        self.notifier.status(f"sync at {when}: {summary or 'nothing configured'}")

    def _failed(self, job: str, error: Exception) -> float:
        """Report a failed run and push the job's next run back; returns the wait."""
        attempt = self._failures[job]
        self._failures[job] = attempt + 1
        interval = (self.config.daemon.sync_interval if job == "sync"
                    else self.config.daemon.backup_interval)
        delay = backoff(attempt, 1.0, base=interval, cap=max(interval, MAX_BACKOFF))
        log.error("%s failed: %s; trying again in %.0f s", job, error, delay)
        if not self.stopping.is_set() and self._scheduler.get_job(job) is not None:
            self._scheduler.modify_job(job, next_run_time=_now() + timedelta(seconds=delay))
        return delay

    # --- backup -----------------------------------------------------------------------------

    def _backup_job(self) -> None:
        from davsync.app.backup import backup_run
        from davsync.app.backup_config import parse_backup
        from davsync.backup.run import RunOptions

        opts = RunOptions(progress=False, cancel=self.stopping)
        self._transfer("backup", lambda: backup_run(parse_backup(self.config), opts).run())

    def _restore_job(self) -> None:
        """Restore mode's backup job: what the backup has and the device lacks comes back to
        where it was backed up from; a file that differs is kept (and named in `status`).
        Contacts and calendars come from the DAV server (the pull-only sync) instead."""
        from davsync.app.backup import restore_run
        from davsync.app.backup_config import parse_backup
        from davsync.backup.restore import RestoreOptions
        from davsync.backup.settings import CATEGORIES

        cfg = parse_backup(self.config)
        opts = RestoreOptions(progress=False, in_place=True, cancel=self.stopping)
        self._transfer("restore", lambda: restore_run(cfg, cfg.state_dir, CATEGORIES,
                                                      opts).run())

    def _transfer(self, kind: str, run: Callable[[], Stats]) -> None:
        """Run the backup (or restore) job's run; report it as the backup job."""
        with self._transfer_lock:
            self._transfer_locked(kind, run)

    def _transfer_locked(self, kind: str, run: Callable[[], Stats]) -> None:
        from davsync.backup.run import BackupCancelled

        if self.stopping.is_set():
            return
        try:
            stats = run()
        except BackupCancelled:
            log.info("%s: stopped; the next run resumes it", kind)
            return
        except DavsyncError as exc:
            delay = self._failed("backup", exc)
            self.notifier.status(f"{kind} failed: {exc}; next try in {delay:.0f} s")
            return
        except Exception:  # a bug must not end the daemon
            log.exception("%s: unexpected error; trying again at the next run", kind)
            return
        finally:
            self._write_status()
        self._failures["backup"] = 0
        summary = stats.to_json()
        self.notifier.status(f"{kind}: {summary['succeeded_files']}/{summary['total_files']} "
                             f"files ok, {summary['failed_files']} failed")

    # --- what `davsync status` reads --------------------------------------------------------

    def _write_status(self, running: bool = True) -> None:
        """The schedule and the mode, for `davsync status` (which cannot ask the scheduler)."""
        jobs = {job.id: {"next_run": _iso(getattr(job, "next_run_time", None))}
                for job in self._scheduler.get_jobs()} if running else {}
        try:
            write_daemon_status(self.config.state_dir, {
                "pid": os.getpid(), "started": _iso(self._started), "running": running,
                "mode": self.mode.value, "mode_source": self.mode_source, "jobs": jobs,
                "sync_runs": self.sync_runs,
            })
        except OSError as exc:
            log.warning("cannot write the daemon's status for `davsync status`: %s", exc)

    # --- device changes ---------------------------------------------------------------------

    def _start_watcher(self, config: Config) -> None:
        folders = [path for path in configured_folders(config) if path.is_dir()]
        if folders:
            self._watcher = DeviceWatcher(folders, self._sync_wanted.set)
            self._watcher.start()

    def _stop_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None


def _daemon_busy(path: Path, who: str) -> str:
    return (f"davsync run is already running on the state directory {path.parent} ({who}); "
            "one daemon per state directory")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds")


def configured_folders(config: Config) -> list[Path]:
    """The folders to watch: each single collection's, and the parent of the kinds with
    `collections = ...` (watched recursively: a new folder there is a new collection)."""
    return [path for _, _, path in configured_collections(config)] + \
        [parent for _, parent, _ in collection_kinds(config)]


def _now() -> datetime:
    return datetime.now(UTC)
