"""How many writes to one collection may be in flight at once, learnt from the server.

A server that serialises writes per collection (Xandikos commits each to git under a lock)
answers the ones that collide `423 Locked` or `500`. Retrying alone keeps colliding, so each such
answer halves the number of writes the collection lets through, down to one; it never grows back
within a run (a collection that refused parallel writes once will again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from davsync.core.retry import WRITE_CONTENTION_STATUSES

log = logging.getLogger(__name__)


class WriteGate:
    """A counting gate whose width shrinks on contention; thread-safe."""

    def __init__(self, limit: int, where: str) -> None:
        self.limit = max(1, limit)
        self._where = where
        self._busy = 0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `limit` places while a write is in flight (retries included)."""
        with self._cond:
            while self._busy >= self.limit:
                self._cond.wait()
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def answered(self, status: int | None) -> None:
        """A write is about to be retried after `status`: narrow the gate if it is contention."""
        if status not in WRITE_CONTENTION_STATUSES:
            return
        with self._cond:
            narrower = max(1, self.limit // 2)
            if narrower < self.limit:
                log.info("%s: the server answered a write with HTTP %s; writing %d at a time "
                         "from now on", self._where, status, narrower)
            self.limit = narrower
