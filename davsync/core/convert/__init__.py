"""Conversion between the formats devices export and the vCard/iCalendar text davsync syncs.

Pure functions over str/bytes (no files, no clock): `mozcontact` (Firefox OS / KaiOS JSON),
`google_csv` (Google Contacts CSV), `singlefile` (many vCards in one .vcf, many events in one
.ics). What each format cannot carry is listed field by field in docs/conversion.md.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Final

from davsync.core.vtext import ParseError

UID_NAMESPACE: Final = uuid.UUID("5d0c8f7e-2a41-5b8e-9c3d-6f1e0a9b7c42")


class ConvertError(ParseError):
    """A record of a device export that cannot be converted; `record` names it for the user."""

    def __init__(self, record: str, why: str) -> None:
        super().__init__(f"record {record}: {why}")
        self.record = record
        self.why = why


@dataclass(frozen=True, eq=False)
class Unconverted:
    """A record of an export that cannot be converted, as it was read (`raw`, in the format's
    own shape: a JSON value, a CSV row, a card's text), so that a rewrite of the file puts it
    back unchanged instead of losing it; `uid` where the record names one (an `id`, a UID
    column), so the sync can tell which synced item it is and never take it for deleted."""

    raw: object
    error: ConvertError
    uid: str | None = None


def record_name(index: int, name: str = "") -> str:
    """How messages name a record: its 1-based position in the export, and its name if known."""
    return f"{index + 1} ({name[:60]})" if name else str(index + 1)


def derived_uid(fmt: str, key: str) -> str:
    """The UID of a record that has none: uuid5 of its format and identity key, so scanning the
    same export again gives the same UID and never a duplicate."""
    return str(uuid.uuid5(UID_NAMESPACE, f"{fmt}\0{key}"))


class Occurrences:
    """Numbers repeated identity keys (`key`, `key#2`, ...) so identical records in one export
    still get distinct, stable UIDs (stable as long as their order is)."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def key(self, key: str) -> str:
        self._seen[key] += 1
        count = self._seen[key]
        return key if count == 1 else f"{key}#{count}"


__all__ = ["UID_NAMESPACE", "ConvertError", "Occurrences", "Unconverted", "derived_uid",
           "record_name"]
