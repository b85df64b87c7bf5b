"""The installation's device id is created once and then stable; the name defaults sensibly."""

from __future__ import annotations

import socket
import stat
import uuid
from pathlib import Path

import pytest

from davsync.credentials.device import device_id, device_name
from davsync.errors import ConfigError


def test_device_id_is_created_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = device_id(state)
    assert uuid.UUID(first)
    assert device_id(state) == first
    assert stat.S_IMODE((state / "device-id").stat().st_mode) == 0o600


def test_two_installations_differ(tmp_path: Path) -> None:
    assert device_id(tmp_path / "a") != device_id(tmp_path / "b")


def test_damaged_device_id_is_reported(tmp_path: Path) -> None:
    (tmp_path / "device-id").write_text("garbage\n", encoding="ascii")
    with pytest.raises(ConfigError, match="device-id"):
        device_id(tmp_path)


def test_device_name() -> None:
    assert device_name("kitchen tablet") == "kitchen tablet"
    assert device_name(None) == socket.gethostname()
