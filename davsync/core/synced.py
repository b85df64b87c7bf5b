"""The state store's record of one item: its own module so that reading the state (before the
no-op probe goes out) never imports the vCard/iCalendar parsers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def device_unchanged(scan: Mapping[str, str], records: Iterable[Synced]) -> bool:
    """True when the device folder holds exactly the files the state recorded, each with its
    recorded signature: nothing added, changed or deleted (nor anything unreadable, which is
    never recorded and so keeps being looked at, and reported)."""
    return dict(scan) == {r.filename: r.device_sig for r in records if r.filename is not None}
