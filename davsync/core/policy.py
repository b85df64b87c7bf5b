"""The user's choices the core acts on, as enums: importing them costs nothing, so the
configuration can name them without loading the planner (the no-op run reads the config before
its probes go out, and loads the planner only after)."""

from __future__ import annotations

from enum import StrEnum


class ConflictPolicy(StrEnum):
    """What to do when an item changed on both sides (`[server] conflict`)."""

    KEEP_BOTH = "keep-both"  # the server's version stays; the device's becomes a new item
    DEVICE_WINS = "device-wins"  # the device's version replaces the server's
    SERVER_WINS = "server-wins"  # the server's version replaces the device's
