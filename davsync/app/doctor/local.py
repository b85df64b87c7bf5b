"""The doctor's checks of what is on this machine: the config file, the device stores, the
state directory and its credentials file, and the systemd user unit."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from davsync.app.doctor import FAIL, Check, Found, Group, Report
from davsync.config import Config, load_config
from davsync.core.kinds import Kind
from davsync.errors import DavsyncError

UNIT: Final = "davsync.service"
# systemctl asks the user's service manager over D-Bus; one that does not answer in this long
# is as good as absent for the doctor.
SYSTEMCTL_TIMEOUT: Final = 5.0
_PROBE_PREFIX: Final = ".davsync-doctor-"


# --- the config file ----------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _warnings_of(logger_name: str) -> Iterator[list[str]]:
    """The warnings `logger_name` logs in the block, kept from the terminal: the doctor prints
    each as its own line, once."""
    logger = logging.getLogger(logger_name)
    handler = _Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def check_config(path: Path | None, report: Report) -> Config | None:
    """Load the config; None (and `report.config_unreadable`) when it cannot be read. A warning
    the loader gives (a file others can read holding a secret) is a failing line."""
    try:
        with _warnings_of("davsync.config") as warnings:
            config = load_config(path)
    except DavsyncError as exc:
        report.checks.append(Check("config", FAIL, str(exc)))
        report.config_unreadable = True
        return None
    report.checks.append(Check("config", "ok", f"{config.path} loads"))
    report.checks.extend(Check("config", FAIL, message) for message in warnings)
    return config


def local_groups(config: Config) -> list[tuple[str, Group]]:
    return [("device", lambda found: check_stores(config, found)),
            ("state", lambda found: check_state(config, found)),
            ("systemd", lambda found: check_systemd(config, found))]


# --- device stores --------------------------------------------------------------------------


def check_stores(config: Config, found: Found) -> None:
    pairs: tuple[tuple[Kind, Path | None], ...] = (
        ("contacts", config.device.contacts), ("calendars", config.device.calendars))
    configured = [(kind, path) for kind, path in pairs if path is not None]
    if not configured:
        found.note("device", f"{config.device.where}: no contacts or calendars store is "
                   "configured; nothing to sync")
    for kind, path in configured:
        parent = config.device.collections(kind) is not None
        _check_store(found, f"device {kind}", kind, config.device.store_type(kind), path,
                     parent)


def _check_store(found: Found, name: str, kind: Kind, store_type: str, path: Path,
                 parent: bool = False) -> None:
    """`parent`: `path` holds one vdir per collection (`collections = ...`)."""
    from davsync.sources.registry import STORES

    folder = STORES[store_type].is_folder(path)
    noun = "folder" if folder else "file"
    if not path.exists():
        found.note(name, f"{path} does not exist yet; the first sync creates it (if it held "
                   "your data before, check that its disk is mounted and the path is right)")
        return
    if folder != path.is_dir():
        found.fail(name, f"{path} is not a {noun}, but a {store_type} store is one; correct "
                   f"[device] {kind}")
        return
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        found.fail(name, f"{path} cannot be read (mode {path.stat().st_mode & 0o777:04o}); "
                   f"give yourself read access: chmod u+r{'x' if folder else ''} {path}")
        return
    problem = _not_writable(path if folder else path.parent) or \
        (None if folder or os.access(path, os.W_OK) else "the file is read-only")
    if problem is not None:
        found.fail(name, f"{path}: cannot write: {problem}; a sync must write device changes "
                   f"there: give yourself write access (chmod u+w)")
        return
    if parent:
        from davsync.sync.collections import device_folders

        folders = sorted(device_folders(path))  # the folders a sync pairs, links left out
        found.ok(name, f"{store_type} parent folder {path}: readable, writable, "
                 f"{len(folders)} collection folder(s)" + (f" ({', '.join(folders)})"
                                                          if folders else ""))
        return
    _count_items(found, name, kind, store_type, path, noun)


def _count_items(found: Found, name: str, kind: Kind, store_type: str, path: Path,
                 noun: str) -> None:
    from davsync.sources.registry import open_store

    try:
        count = len(open_store(store_type, path, kind).scan())
    except DavsyncError as exc:
        found.fail(name, f"{path} cannot be read: {exc}")
        return
    found.ok(name, f"{store_type} {noun} {path}: readable, writable, {count} item(s)")


def _not_writable(folder: Path) -> str | None:
    """Why a file cannot be made in `folder` (None: it can). Tested by making and removing a
    temporary file of our own: permission bits do not tell about read-only mounts or ACLs,
    and no file of the user's is touched."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(tmp)
    return None


# --- state directory and credentials file ---------------------------------------------------


def check_state(config: Config, found: Found) -> None:
    state = config.state_dir
    existing = next((p for p in (state, *state.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        found.fail("state", f"{state}: cannot be created ({existing} is not a folder); set "
                   "[state] dir to a folder of yours")
        return
    problem = _not_writable(existing)
    if problem is not None:
        found.fail("state", f"{existing}: cannot write: {problem}; davsync keeps its state in "
                   f"{state}: make it writable (chmod u+w) or set [state] dir")
    elif existing != state:
        found.ok("state", f"{state} does not exist yet; the first run creates it")
    else:
        found.ok("state", f"{state} is writable")
    _check_credentials_file(state, found)


def _check_credentials_file(state: Path, found: Found) -> None:
    from davsync.credentials.store import CREDENTIALS_FILE, check_private

    path = state / CREDENTIALS_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return  # basic auth, or the keyring holds them
    except OSError as exc:
        found.fail("credentials", f"{path}: cannot read: {exc.strerror}")
        return
    try:
        check_private(path, st)
    except DavsyncError as exc:
        found.fail("credentials", str(exc))
        return
    found.ok("credentials", f"{path} has mode {st.st_mode & 0o777:04o}")


# --- systemd ---------------------------------------------------------------------------------


def unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT


def check_systemd(config: Config, found: Found) -> None:
    """Unit installed and enabled, daemon running: notes, never failures. davsync works without
    systemd (a cron job, `davsync run` by hand), so none of this is wrong."""
    path = unit_path()
    if not path.exists():
        found.note("systemd", f"{path} is not installed: `davsync run` is not kept running "
                   "by systemd (see README, Run as a service)")
    else:
        found.ok("systemd", f"{path} is installed{_unit_state()}")
    _check_running(config, found)


def _unit_state() -> str:
    if shutil.which("systemctl") is None:
        return " (systemctl not found: cannot tell whether it is enabled)"
    enabled = _systemctl("is-enabled")
    active = _systemctl("is-active")
    if enabled is None or active is None:
        return " (the user's systemd does not answer: cannot tell whether it is enabled)"
    return f", {enabled}, {active}"


def _systemctl(verb: str) -> str | None:
    """`systemctl --user <verb> davsync.service`'s one-word answer ("enabled", "active", ...);
    None when the user manager cannot be asked."""
    try:
        proc = subprocess.run(["systemctl", "--user", verb, UNIT], capture_output=True,
                              text=True, timeout=SYSTEMCTL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = proc.stdout.split()
    return words[0] if words and proc.returncode in (0, 1, 3, 4) and not proc.stderr.strip() \
        else None


def _check_running(config: Config, found: Found) -> None:
    """Whether a sync (the daemon's or a command's) holds the state directory's lock now."""
    import fcntl

    from davsync.state.lock import holder

    path = config.state_dir / "sync.lock"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        found.note("daemon", "no sync has run on this state directory yet")
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            found.ok("daemon", f"a sync is running now ({holder(fd)})")
            return
        found.ok("daemon", "no sync is running now")
    finally:
        os.close(fd)
