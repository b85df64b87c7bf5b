"""Whether the daemon's sync worker is making progress, and systemd's watchdog pings that
follow from it: a run stuck without a request stops the pings, so that systemd restarts
davsync."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from davsync.app.notify import Notifier
from davsync.config import Config

log = logging.getLogger("davsync.app.daemon")  # the daemon's own log, as before the split


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


class Watchdog:
    """Pings systemd's watchdog while the heartbeat is alive; says once that it stopped."""

    def __init__(self, heartbeat: Heartbeat, notifier: Notifier,
                 requests: Callable[[], int]) -> None:
        self.heartbeat = heartbeat
        self.notifier = notifier
        self._requests = requests  # the sync service's request count, read at each ping
        self._told_hung = False

    def ping(self) -> None:
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
