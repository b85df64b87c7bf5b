"""The systemd notify protocol (sd_notify(3)): telling the service manager that the daemon is
ready, what it is doing, that it is reloading or stopping, and that it is still alive.

systemd hands a `Type=notify` service a datagram socket in `NOTIFY_SOCKET`: a path, or `@name`
for a socket in the abstract namespace. Each notification is one datagram of newline-separated
`VAR=value` assignments; the kernel attaches the sender's credentials, by which systemd accepts
only the main process (`NotifyAccess=main`). `WATCHDOG_USEC` (with `WATCHDOG_PID`, when set,
naming the process it is meant for) asks for `WATCHDOG=1` at least that often.

Without `NOTIFY_SOCKET` (a terminal, a container, the one-shot timer unit) every call does
nothing, so the daemon calls these unconditionally. The standard library is enough: the
protocol is one `sendto`, and libsystemd's Python bindings would add a C dependency.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


class Notifier:
    """Sends notifications to one socket address; `None` means not run by systemd (no-op).

    A failed send is logged once (systemd may then time the start out or think the daemon
    hung, and the log says why) and never raised: the daemon's work matters more than its
    notifications.
    """

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self._address = address
        self._shown = (address or "").replace("\0", "@", 1)  # as NOTIFY_SOCKET spelled it
        self._warned = False
        self.watchdog_seconds = watchdog_seconds

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None,
                     pid: int | None = None, unset: bool = True) -> Notifier:
        """The notifier systemd asked for in `environ` (default: this process's environment).

        With `unset` the variables are removed, as sd_notify's `unset_environment` does, so
        that child processes (`password_command`, `assertion_command`) neither inherit the
        socket nor believe the watchdog is theirs.
        """
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET, "")
        watchdog = _watchdog_seconds(env.get(WATCHDOG_USEC), env.get(WATCHDOG_PID),
                                     os.getpid() if pid is None else pid)
        if unset:
            for name in (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID):
                env.pop(name, None)
        notifier = cls(_socket_address(raw), watchdog)
        if raw and notifier._address is None:
            notifier._warn(f"{NOTIFY_SOCKET}={raw} is not a path or @abstract socket name "
                           "davsync can use; systemd will get no notifications")
        return notifier

    @property
    def enabled(self) -> bool:
        """True when run by systemd with a socket to notify."""
        return self._address is not None

    @property
    def watchdog_ping_every(self) -> float | None:
        """How often to call `watchdog()`: half the interval, as sd_watchdog_enabled(3)
        recommends, so that one late ping does not get the service killed."""
        return None if self.watchdog_seconds is None else self.watchdog_seconds / 2

    def ready(self) -> bool:
        """Start-up is complete: `systemctl start` returns and dependent units start."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """One line shown by `systemctl status` (newlines would start a new assignment)."""
        return self.notify("STATUS=" + " ".join(text.splitlines()))

    def reloading(self, monotonic_usec: int | None = None) -> bool:
        """Re-reading the configuration (SIGHUP); call `ready()` when done. The timestamp
        lets systemd tell this reload from an earlier one (`Type=notify-reload`)."""
        if monotonic_usec is None:
            monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> bool:
        """Shutting down: systemd shows "deactivating" instead of waiting in silence."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Still alive: resets systemd's watchdog timer (`WatchdogSec=`)."""
        return self.notify("WATCHDOG=1")

    def notify(self, *assignments: str) -> bool:
        """Sends `assignments` in one datagram; False when not run by systemd or on failure."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(assignments).encode(), self._address)
        except OSError as exc:
            self._warn(f"cannot notify systemd at {NOTIFY_SOCKET}={self._shown} "
                       f"({exc.strerror or exc}); systemd may consider the service not "
                       "started or hung")
            return False
        return True

    def _warn(self, message: str) -> None:
        if self._warned:
            log.debug("%s", message)
            return
        self._warned = True
        log.warning("%s", message)


def _socket_address(raw: str) -> str | None:
    """The AF_UNIX address in `NOTIFY_SOCKET`: `@name` is the abstract socket `\\0name`.
    Other forms (`vsock:...`, relative paths) are not for a user service: None."""
    if raw.startswith("/"):
        return raw
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    return None


def _watchdog_seconds(usec: str | None, for_pid: str | None, pid: int) -> float | None:
    """The watchdog interval systemd asked this process for, or None: unset, not a positive
    number of microseconds, or meant for another process (`WATCHDOG_PID`)."""
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if for_pid and (not for_pid.isdigit() or int(for_pid) != pid):
        return None
    return int(usec) / 1_000_000
