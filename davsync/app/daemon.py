"""`davsync run`: one process that keeps the configured collections and the backup up to date.

Three kinds of thread, so that none waits for another's work:
- APScheduler's jobs say *when* (`app/jobs.py`): a sync every `[daemon] sync_interval`, a
  backup every `backup_interval` (`app/backup_job.py`), each with jitter, one instance at a
  time, missed runs coalesced. The sync job only asks for a run (`_sync_wanted`), so a request
  never gets lost because a run is already under way (max_instances would drop it).
- One sync worker does the runs, one after another, through one `SyncService` (one client,
  one connection pool); a device change seen by the watcher asks for a run the same way.
- The main thread waits for signals: SIGTERM/SIGINT stop (the item in flight finishes),
  SIGHUP reloads the configuration; it also pings systemd's watchdog (`app/heartbeat.py`).

Offline is normal: a failed run is logged, shown in systemd's STATUS=, recorded for `davsync
status` (`runstatus`, `app/daemon_status.py`), and the next run waits `core.retry.backoff` of
the interval: the interval after one failure, twice it after two, up to `jobs.MAX_BACKOFF`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from davsync.app.backup_job import BackupJob
from davsync.app.credentials import mode_in_force
from davsync.app.daemon_status import DaemonStatus
from davsync.app.heartbeat import Heartbeat, Watchdog, hung_bound
from davsync.app.jobs import Jobs
from davsync.app.notify import Notifier
from davsync.app.sync import SyncService, collection_kinds, configured_collections
from davsync.app.watch import DeviceWatcher
from davsync.config import Config, load_config
from davsync.config.schema import DaemonMode
from davsync.errors import DavsyncError
from davsync.runstatus import record_outcome
from davsync.state.lock import state_lock
from davsync.sync.values import SyncResult

log = logging.getLogger(__name__)

# How often the main thread wakes without a watchdog asking: a signal's work is done then.
_IDLE_WAKE = 30.0


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
        self._jobs = Jobs(self.stopping)
        self._worker = threading.Thread(target=self._sync_worker, name="davsync-sync")
        self._watcher: DeviceWatcher | None = None
        self.mode, self.mode_source = mode_in_force(config)
        self.sync_runs = 0
        self.heartbeat = Heartbeat(hung_bound(config))
        self.watchdog = Watchdog(self.heartbeat, notifier, self._requests)
        self._status = DaemonStatus()
        self._backup = BackupJob(lambda: self.config, self.stopping, self._jobs, notifier,
                                 self._write_status)

    # --- life cycle -------------------------------------------------------------------------

    def run(self) -> int:
        """One daemon per state directory: its lock is held for the daemon's life (a second
        `davsync run` on the same state waits a few seconds, then is told and exits 3)."""
        with state_lock(self.config.state_dir, "daemon", busy=_daemon_busy):
            return self._run()

    def _run(self) -> int:
        self._install_signals()
        self._jobs.start()
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
            self.watchdog.ping()

    def _requests(self) -> int:
        service = self._service
        return service.requests if service is not None else 0

    def _shut_down(self) -> None:
        self.notifier.stopping()
        log.info("davsync run: stopping")
        self._stop_watcher()
        self._jobs.shut_down()
        self._backup.wait_idle()
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
        self._jobs.clear()
        if mode is DaemonMode.RESTORE:
            log.info("mode restore (set by %s): server changes are downloaded and missing "
                     "backed-up files restored; nothing is uploaded", self.mode_source)
        if mode is DaemonMode.DISABLED:
            log.info("mode disabled (set by %s): nothing is synced or backed up",
                     self.mode_source)
        if self._service is not None:
            self._jobs.add("sync", self._sync_wanted.set, daemon.sync_interval, daemon.jitter,
                           first=None)
        if mode in (DaemonMode.BOTH, DaemonMode.BACKUP, DaemonMode.RESTORE) \
                and config.has_section("backup"):
            job = self._backup.restore if mode is DaemonMode.RESTORE else self._backup.backup
            self._jobs.add("backup", job, daemon.backup_interval, daemon.jitter, first=_now())

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
        delay = None if result.fatal is None else self._jobs.failed(
            "sync", result.fatal, self.config.daemon.sync_interval)
        if delay is None:
            self._jobs.succeeded("sync")
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

    # --- what `davsync status` reads --------------------------------------------------------

    def _write_status(self, running: bool = True) -> None:
        """The schedule and the mode, for `davsync status` (which cannot ask the scheduler)."""
        self._status.write(self.config.state_dir, running=running, mode=self.mode.value,
                           mode_source=self.mode_source,
                           next_runs=self._jobs.next_runs() if running else {},
                           sync_runs=self.sync_runs)

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


def configured_folders(config: Config) -> list[Path]:
    """The folders to watch: each single collection's, and the parent of the kinds with
    `collections = ...` (watched recursively: a new folder there is a new collection)."""
    return [path for _, _, path in configured_collections(config)] + \
        [parent for _, parent, _ in collection_kinds(config)]


def _now() -> datetime:
    return datetime.now(UTC)
