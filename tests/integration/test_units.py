"""Every unit in systemd/ loads without a warning (`systemd-analyze verify`), every service is
rated "OK" or better by `systemd-analyze security --offline=yes`, in the mode it is installed
in, and the units say what README promises."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.davsync_server import DAVSYNC
from tests.fixtures.systemd import OK_OR_BETTER, exposure, user_home, verify

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
# How each unit is installed: the system one runs `davsync server` from /usr/local/bin
UNITS = {
    "davsync-server.service": "system",
    "davsync-sync.service": "user",
    "davsync-sync.timer": "user",
    "davsync.service": "user",
}
SERVICES = [name for name in UNITS if name.endswith(".service")]


def settings(name: str) -> dict[str, list[str]]:
    """The unit's `Key=value` lines, every value of a key repeated (SystemCallFilter)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS_DIR / name).read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";")):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def installed(name: str, tmp_path: Path) -> tuple[Path, dict[str, str] | None]:
    """A copy of systemd/ (the timer needs its service beside it) with davsync where `name`
    expects it, and the user manager's environment for a user unit (None: system)."""
    folder = tmp_path / "units"
    shutil.copytree(UNITS_DIR, folder)
    if UNITS[name] == "user":
        return folder / name, user_home(tmp_path / "home")
    unit = folder / name
    unit.write_text(unit.read_text(encoding="utf-8").replace("/usr/local/bin/davsync", DAVSYNC),
                    encoding="utf-8")
    return unit, None


def test_every_unit_is_checked() -> None:
    assert {p.name for p in UNITS_DIR.iterdir()} == set(UNITS)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_verifies(name: str, tmp_path: Path) -> None:
    verify(*installed(name, tmp_path))


@pytest.mark.parametrize("name", SERVICES)
def test_service_rates_ok_or_better(name: str, tmp_path: Path) -> None:
    score, rating = exposure(*installed(name, tmp_path))
    assert rating in OK_OR_BETTER, (name, score, rating)
    if name == "davsync-sync.service":  # the rating README quotes
        readme = (UNITS_DIR.parent / "README.md").read_text(encoding="utf-8")
        assert f'security davsync-sync.service` rates it {score} "{rating}"' in readme


@pytest.mark.parametrize("name", ["davsync.service", "davsync-sync.service"])
def test_a_drop_in_adding_device_folders_keeps_the_unit_valid_and_rated(
    name: str, tmp_path: Path,
) -> None:
    """README's way to let the sandboxed service write the user's own folders."""
    unit, env = installed(name, tmp_path)
    drop_in = unit.parent / f"{name}.d"
    drop_in.mkdir()
    (drop_in / "folders.conf").write_text(
        "[Service]\nReadWritePaths=%h/Contacts %h/Calendars\n", encoding="utf-8")
    verify(unit, env)
    assert exposure(unit, env)[1] in OK_OR_BETTER


@pytest.mark.parametrize("name", ["davsync.service", "davsync-sync.service"])
def test_user_services_run_the_installed_binary_in_a_sandbox(name: str) -> None:
    unit = settings(name)
    assert unit["ExecStart"][0].startswith("%h/.local/bin/davsync ")
    assert unit["ProtectSystem"] == ["strict"] and unit["ProtectHome"] == ["read-only"]
    assert "%h/.local/state/davsync" in unit["ReadWritePaths"][0].split()
    assert unit["NoNewPrivileges"] == ["yes"] and unit["PrivateTmp"] == ["yes"]
    assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert "@system-service" in unit["SystemCallFilter"]
    assert "PrivateUsers" in unit  # what makes the sandbox work in a user manager


def test_item_failures_fail_the_timer_run() -> None:
    """Exit 1 (some items failed) must show as a failed unit, not as success."""
    assert "SuccessExitStatus" not in settings("davsync-sync.service")


def test_the_daemon_unit_notifies_and_is_watched() -> None:
    unit = settings("davsync.service")
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == ["%h/.local/bin/davsync run"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"] and unit["WatchdogSec"]
