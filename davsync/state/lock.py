"""One run at a time per state directory: an advisory lock (fcntl.flock) on a file in it.

Shared by every room that must not run twice over the same state (a sync: `sync.lock`; a
backup: `backup.lock`), whether run by the daemon or from a shell or a timer. The lock
dies with its process, so a killed run never leaves a stale one behind. The file holds the
holder's pid, so that the one who waits can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from davsync.errors import EXIT_UNREACHABLE, DavsyncError

# How long a second run waits for the first before it gives up: long enough for a run that is
# just finishing (a no-op run takes well under a second), short enough for a timer or a
# person not to wonder what hangs.
LOCK_WAIT = 5.0
_POLL = 0.1


class Busy(DavsyncError):
    """Another process holds the state directory's lock; the run did nothing. Exit 3, as for
    an unreachable server: try again later, nothing is wrong with the configuration."""

    exit_code = EXIT_UNREACHABLE


@contextmanager
def state_lock(
    state_dir: Path, name: str, *, wait: float = LOCK_WAIT,
    busy: Callable[[Path, str], str] | None = None, sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold `<state_dir>/<name>.lock` for the block. Waits up to `wait` seconds for another
    holder, then raises `Busy` with `busy(lock path, holder)` as its message (holder: "process
    <pid>" or "another process")."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        _acquire(fd, path, wait, busy or _default_busy, sleep)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def is_held(state_dir: Path, name: str) -> bool:
    """Whether a process holds `<state_dir>/<name>.lock` now (for `status`: is a daemon
    running?). Takes the lock for an instant when it is free; a holder waiting for it then
    gets it a poll later."""
    try:
        fd = os.open(state_dir / f"{name}.lock", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _acquire(fd: int, path: Path, wait: float, busy: Callable[[Path, str], str],
             sleep: Callable[[float], None]) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise Busy(busy(path, holder(fd))) from None
            sleep(_POLL)


def holder(fd: int) -> str:
    """Who holds the lock, as its file says."""
    try:
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError):
        return "another process"
    return f"process {pid}"


def _default_busy(path: Path, who: str) -> str:
    return f"{path.parent} is in use by {who} (lock {path}); try again when it has finished"
