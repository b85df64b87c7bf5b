"""The daemon's job bookkeeping: APScheduler's jobs say *when* (every interval, with jitter,
one instance at a time, missed runs coalesced), and a failed run pushes its job's next run
back by `core.retry.backoff` of the interval: the interval after one failure, twice it after
two, up to `MAX_BACKOFF`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from davsync.core.retry import backoff

log = logging.getLogger("davsync.app.daemon")  # the daemon's own log, as before the split

# The longest a failing job waits before it tries again: a server back after a night is
# seen within the hour, and a refusing server is asked at most once an hour.
MAX_BACKOFF = 3600.0


class Jobs:
    """The scheduler and each job's count of failures in a row."""

    def __init__(self, stopping: threading.Event) -> None:
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._stopping = stopping  # once set, a failure no longer reschedules
        self._failures = {"sync": 0, "backup": 0}

    def start(self) -> None:
        self.scheduler.start()

    def shut_down(self) -> None:
        # Not shutdown(wait=True): that holds the scheduler's lock while it waits, and a job
        # that asks the scheduler anything (its next run, a backoff) would wait forever.
        self.scheduler.shutdown(wait=False)

    def clear(self) -> None:
        for job in self.scheduler.get_jobs():
            job.remove()

    def add(self, name: str, func: Callable[[], None], interval: float, jitter: float,
            first: datetime | None) -> None:
        trigger = IntervalTrigger(seconds=interval, jitter=jitter or None, timezone=UTC)
        options: dict[str, Any] = {"next_run_time": first} if first is not None else {}
        self.scheduler.add_job(func, trigger, id=name, name=name, max_instances=1,
                               coalesce=True, misfire_grace_time=None, **options)

    def failed(self, job: str, error: Exception, interval: float) -> float:
        """Report a failed run and push the job's next run back; returns the wait."""
        attempt = self._failures[job]
        self._failures[job] = attempt + 1
        delay = backoff(attempt, 1.0, base=interval, cap=max(interval, MAX_BACKOFF))
        log.error("%s failed: %s; trying again in %.0f s", job, error, delay)
        if not self._stopping.is_set() and self.scheduler.get_job(job) is not None:
            self.scheduler.modify_job(job, next_run_time=_now() + timedelta(seconds=delay))
        return delay

    def succeeded(self, job: str) -> None:
        self._failures[job] = 0

    def next_runs(self) -> dict[str, datetime | None]:
        """Each job's next run, for the status file (`davsync status` cannot ask)."""
        return {job.id: getattr(job, "next_run_time", None)
                for job in self.scheduler.get_jobs()}


def _now() -> datetime:
    return datetime.now(UTC)
