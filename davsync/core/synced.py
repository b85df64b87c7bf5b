"""The state store's record of one item: its own module so that reading the state (before the
no-op probe goes out) never imports the vCard/iCalendar parsers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Synced:
    """What the state store remembers of one item after its last successful sync."""

    uid: str
    filename: str | None
    device_sig: str | None
    href: str | None
    etag: str | None
    hash: str
