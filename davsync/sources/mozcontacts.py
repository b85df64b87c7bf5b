"""A Firefox OS / KaiOS contacts export: one JSON array of mozContact objects, over
`core.convert.mozcontact`. A contact's `id` is its UID (one without gets a stable derived
UID, written back as its `id` on the next rewrite)."""

from __future__ import annotations

from typing import Any

from davsync.core.convert import Unconverted, mozcontact
from davsync.sources.onefile import Entry, OneFileSource


class MozContactsSource(OneFileSource):
    """A record that cannot be converted is kept as its JSON object, in its place."""

    what = "contacts export (JSON)"

    def split(self, data: bytes) -> tuple[list[Entry], Any]:
        return mozcontact.export_records(data), None

    def join(self, entries: list[Entry], rest: Any) -> bytes:
        records = [e if isinstance(e, Unconverted) else mozcontact.from_vcard(e, str(i + 1))
                   for i, e in enumerate(entries)]
        return mozcontact.serialize_records(records).encode("utf-8")
