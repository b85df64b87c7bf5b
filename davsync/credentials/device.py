"""This installation's identity toward the provisioning server: a stable id and a readable name.

The id is a random UUID made once and kept in the state directory, so re-provisioning after a
revoke replaces this device's entry on the server instead of adding a new device each time.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Final

from davsync.credentials.store import ensure_private_dir
from davsync.errors import ConfigError
from davsync.fsutil import write_atomic

DEVICE_ID_FILE: Final = "device-id"


def device_id(state_dir: Path) -> str:
    """Read the device id, creating it on first use; two racing first runs agree on one id."""
    path = state_dir / DEVICE_ID_FILE
    existing = _read(path)
    if existing is not None:
        return existing
    ensure_private_dir(state_dir)
    new = str(uuid.uuid4())
    try:
        write_atomic(path, f"{new}\n".encode("ascii"), replace=False)
    except FileExistsError:
        return _read(path) or _damaged(path)
    return new


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the device id: {exc}") from None
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return _damaged(path)


def _damaged(path: Path) -> str:
    raise ConfigError(
        f"{path}: not a device id; remove the file (this device then registers as a new one)"
    )


def device_name(configured: str | None) -> str:
    """`[server] device_name`, else the host name, which is what users recognise in a list."""
    return configured or socket.gethostname() or "davsync"
