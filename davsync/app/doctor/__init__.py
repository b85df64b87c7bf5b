"""`davsync doctor`: every check of an installation, each one line: ok, a note, or what is wrong
and how to fix it.

The checks are grouped by what they talk to (the config and local files, the DAV server, the S3
endpoint, systemd); each group runs under its own deadline in a thread of its own, so a server
that never answers costs its group a line saying so and never hangs the command. A check never
changes user data: writability is tested with a temporary file (or probe object) of its own,
removed at once, and credentials are provisioned only when none are stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from davsync.config import Config
from davsync.errors import EXIT_CONFIG, EXIT_ITEMS_FAILED, EXIT_OK

Status = Literal["ok", "note", "fail"]
OK: Final = "ok"
NOTE: Final = "note"
FAIL: Final = "fail"
# The most one group of checks may take: a request has its own, shorter timeouts; this is the
# backstop for whatever else could stall (a password_command, a half-open connection).
GROUP_DEADLINE: Final = 60.0


@dataclass(frozen=True)
class Check:
    """One line of the report: `name` says what was checked, `detail` what was found (for a
    failure: what is wrong and how to fix it). Never holds a secret."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        word = {OK: "ok", NOTE: "note", FAIL: "FAIL"}[self.status]
        return f"{word:<4} {self.name}: {self.detail}"

    def as_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    config_unreadable: bool = False

    @property
    def exit_code(self) -> int:
        """2 when the config could not be read (as for every command), 1 when any check
        failed, else 0 (notes do not count)."""
        if self.config_unreadable:
            return EXIT_CONFIG
        return EXIT_ITEMS_FAILED if any(c.status == FAIL for c in self.checks) else EXIT_OK

    def as_json(self) -> dict[str, object]:
        return {"exit_code": self.exit_code, "checks": [c.as_json() for c in self.checks]}


class Found:
    """Where a group puts its checks as it goes: a group cut off by its deadline still reports
    what it found until then."""

    def __init__(self) -> None:
        self._checks: list[Check] = []
        self._lock = threading.Lock()

    def add(self, name: str, status: Status, detail: str) -> None:
        with self._lock:
            self._checks.append(Check(name, status, detail))

    def ok(self, name: str, detail: str) -> None:
        self.add(name, OK, detail)

    def note(self, name: str, detail: str) -> None:
        self.add(name, NOTE, detail)

    def fail(self, name: str, detail: str) -> None:
        self.add(name, FAIL, detail)

    def snapshot(self) -> list[Check]:
        with self._lock:
            return list(self._checks)


Group = Callable[[Found], None]


def run_group(name: str, group: Group, deadline: float = GROUP_DEADLINE) -> list[Check]:
    """Run one group of checks in a daemon thread for at most `deadline` seconds. A group that
    overruns gets a failing line; its thread is left to end on its own (its requests have
    their own timeouts) and adds nothing more to the report."""
    found = Found()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            group(found)
        except Exception as exc:  # a bug in a check must not hide the other checks
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"davsync-doctor-{name}", daemon=True)
    thread.start()
    thread.join(deadline)
    checks = found.snapshot()
    if thread.is_alive():
        checks.append(Check(name, FAIL, f"no answer within {deadline:g} s; the checks after "
                            "the last line above did not finish (a server that does not answer?)"))
    for exc in errors:
        checks.append(Check(name, FAIL, f"the check stopped: {type(exc).__name__}: {exc}"))
    return checks


def run_doctor(config_path: Path | None, deadline: float = GROUP_DEADLINE) -> Report:
    """Every check of the installation `config_path` (None: the default config) describes."""
    from davsync.app.doctor.local import check_config, local_groups

    report = Report()
    config = check_config(config_path, report)
    if config is None:
        return report
    for name, group in local_groups(config) + _remote_groups(config):
        report.checks.extend(run_group(name, group, deadline))
    if not config.has_server():
        report.checks.append(Check("server", NOTE, f"{config.path} has no [server] section: "
                                   "nothing is synced"))
    if not config.has_section("backup"):
        report.checks.append(Check("backup", NOTE, f"{config.path} has no [backup] section: "
                                   "nothing is backed up"))
    return report


def _remote_groups(config: Config) -> list[tuple[str, Group]]:
    from davsync.app.doctor.dav import dav_group
    from davsync.app.doctor.s3 import s3_group

    groups: list[tuple[str, Group]] = []
    if config.has_server():
        groups.append(("server", dav_group(config)))
    if config.has_section("backup"):
        groups.append(("backup", s3_group(config)))
    return groups
