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
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from davsync.app.notify import Notifier
from davsync.app.sync import SyncService, collection_kinds, configured_collections
from davsync.config import Config, load_config
from davsync.config.schema import DaemonMode
from davsync.core.retry import backoff
from davsync.errors import DavsyncError
from davsync.runstatus import record_outcome
from davsync.sync.values import SyncResult

log = logging.getLogger(__name__)

# The longest a failing job waits before it tries again: a server back after a night is
# seen within the hour, and a refusing server is asked at most once an hour.
MAX_BACKOFF = 3600.0
# A burst of device edits (an editor saving twice, a bulk import) is one sync: the watcher
# waits this long for the writes to stop.
DEBOUNCE_MS = 500
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
        self._failures = {"sync": 0, "backup": 0}
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._worker = threading.Thread(target=self._sync_worker, name="davsync-sync")
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self._scheduler.start()
        self._apply(self.config)
        self._worker.start()
        self.notifier.ready()
        self.notifier.status(f"running ({self.config.daemon.mode.value})")
        log.info("davsync run: started (mode %s)", self.config.daemon.mode.value)
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
            self.notifier.watchdog()

    def _shut_down(self) -> None:
        self.notifier.stopping()
        log.info("davsync run: stopping")
        self._stop_watcher()
        self._scheduler.shutdown(wait=True)  # a backup in flight stops at its next check
        self._worker.join()
        if self._service is not None:
            self._service.close()

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
        """(Re)build the jobs, the sync service and the watcher from `config`."""
        with self._service_lock:
            if self._service is not None:
                self._service.close()
            self.config = config
            self._service = SyncService(config) if self._syncs(config) else None
        self._stop_watcher()
        self._schedule(config)
        if self._service is not None:
            self._start_watcher(config)
            self._sync_wanted.set()  # a run at once: after a start or a change of config

    def _syncs(self, config: Config) -> bool:
        return config.daemon.mode is DaemonMode.BOTH and config.has_server() and bool(
            configured_folders(config))

    def _schedule(self, config: Config) -> None:
        daemon = config.daemon
        for job in self._scheduler.get_jobs():
            job.remove()
        if daemon.mode is DaemonMode.RESTORE:
            log.warning("%s mode = \"restore\": davsync run does not restore yet; it neither "
                        "syncs nor backs up (run `davsync restore`)", config.where("daemon"))
        if daemon.mode is DaemonMode.DISABLED:
            log.info("%s mode = \"disabled\": nothing is synced or backed up",
                     config.where("daemon"))
        if self._service is not None:
            self._add_job("sync", self._sync_wanted.set, daemon.sync_interval, daemon.jitter,
                          first=None)
        backs_up = daemon.mode in (DaemonMode.BOTH, DaemonMode.BACKUP)
        if backs_up and config.has_section("backup"):
            self._add_job("backup", self._backup_job, daemon.backup_interval, daemon.jitter,
                          first=_now())

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
                try:
                    result = service.run(cancel=self.stopping)
                except Exception:  # a bug must not end the daemon: logged, tried again later
                    log.exception("sync: unexpected error; trying again at the next run")
                    result = SyncResult(fatal=DavsyncError("unexpected error (see the log)"))
            self._after_sync(result)

    def _after_sync(self, result: SyncResult) -> None:
        record_outcome(self.config.state_dir, result.fatal)
        when = _now().strftime("%H:%M:%S")
        if result.fatal is not None:
            delay = self._failed("sync", result.fatal)
            self.notifier.status(f"sync failed at {when}: {result.fatal}; "
                                 f"next try in {delay:.0f} s")
            return
        self._failures["sync"] = 0
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
        if self._scheduler.get_job(job) is not None:
            self._scheduler.modify_job(job, next_run_time=_now() + timedelta(seconds=delay))
        return delay

    # --- backup -----------------------------------------------------------------------------

    def _backup_job(self) -> None:
        from davsync.app.backup import backup_run
        from davsync.app.backup_config import parse_backup
        from davsync.backup.run import RunOptions

        try:
            stats = backup_run(parse_backup(self.config), RunOptions(progress=False)).run()
        except DavsyncError as exc:
            delay = self._failed("backup", exc)
            self.notifier.status(f"backup failed: {exc}; next try in {delay:.0f} s")
            return
        except Exception:  # a bug must not end the daemon
            log.exception("backup: unexpected error; trying again at the next run")
            return
        self._failures["backup"] = 0
        summary = stats.to_json()
        self.notifier.status(f"backup: {summary['succeeded_files']}/{summary['total_files']} "
                             f"files ok, {summary['failed_files']} failed")

    # --- device changes ---------------------------------------------------------------------

    def _start_watcher(self, config: Config) -> None:
        folders = [path for path in configured_folders(config) if path.is_dir()]
        if not folders:
            return
        self._watch_stop = stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, args=(folders, stop),
                                         name="davsync-watch", daemon=True)
        self._watcher.start()

    def _stop_watcher(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None

    def _watch(self, folders: list[Path], stop: threading.Event) -> None:
        """A change under a device folder asks for a sync; a folder that cannot be watched
        (no inotify, too many watches) leaves the periodic runs to find its changes."""
        from watchfiles import watch

        try:
            for _changes in watch(*folders, stop_event=stop, debounce=DEBOUNCE_MS, step=50,
                                  raise_interrupt=False):
                log.debug("device folders changed: syncing")
                self._sync_wanted.set()
        except Exception as exc:  # watchfiles raises plain OS and runtime errors
            log.warning("cannot watch %s (%s); device changes are found by the periodic "
                        "sync instead", ", ".join(map(str, folders)), exc)


def configured_folders(config: Config) -> list[Path]:
    """The folders to watch: each single collection's, and the parent of the kinds with
    `collections = ...` (watched recursively: a new folder there is a new collection)."""
    return [path for _, _, path in configured_collections(config)] + \
        [parent for _, parent, _ in collection_kinds(config)]


def _now() -> datetime:
    return datetime.now(UTC)
