"""Device changes for the daemon: inotify through watchfiles, or a periodic scan where a
folder cannot be watched. Each batch of changes calls `on_change` (the daemon asks for a
sync); the watcher never syncs itself, so a burst of edits is one request for one sync."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# A burst of device edits (an editor saving twice, a bulk import) is one sync: the watcher
# waits this long for the writes to stop.
DEBOUNCE_MS = 500
# A device store that cannot be watched is looked at this often instead (a stat of its
# files; a sync only when something changed).
SCAN_FALLBACK = 5.0


class DeviceWatcher:
    """Watches `folders` on a thread of its own from `start()` until `stop()`."""

    def __init__(self, folders: list[Path], on_change: Callable[[], None]) -> None:
        self.folders = folders
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="davsync-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        """A folder that cannot be watched (no inotify, too many watches) is scanned every
        `SCAN_FALLBACK` seconds instead."""
        try:
            for _changes in self.watch_changes(self.folders, self._stop):
                log.debug("device folders changed: syncing")
                self.on_change()
        except Exception as exc:  # watchfiles raises plain OS and runtime errors
            log.warning("cannot watch %s (%s); looking for device changes every %g s "
                        "instead", ", ".join(map(str, self.folders)), exc, SCAN_FALLBACK)
            self._scan_instead()

    @staticmethod
    def watch_changes(folders: list[Path], stop: threading.Event) -> Iterator[object]:
        """Batches of changes under `folders` (inotify through watchfiles) until `stop`."""
        from watchfiles import watch

        yield from watch(*folders, stop_event=stop, debounce=DEBOUNCE_MS, step=50,
                         raise_interrupt=False)

    def _scan_instead(self) -> None:
        """The fallback: a stat of every file; a sync is asked for when anything differs."""
        seen = folders_signature(self.folders)
        while not self._stop.wait(SCAN_FALLBACK):
            now = folders_signature(self.folders)
            if now != seen:
                log.debug("device folders changed (scan): syncing")
                seen = now
                self.on_change()


def folders_signature(folders: list[Path]) -> frozenset[tuple[str, int, int]]:
    """(path, size, mtime) of every file below `folders`: equal while nothing changed."""
    out: set[tuple[str, int, int]] = set()
    for folder in folders:
        for top, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(top, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out.add((path, st.st_size, st.st_mtime_ns))
    return frozenset(out)
