"""A Firefox OS / KaiOS contacts export: one JSON array of mozContact objects, over
`core.convert.mozcontact`. A contact's `id` is its UID (one without gets a stable derived
UID, written back as its `id` on the next rewrite)."""

from __future__ import annotations

from typing import Any

from davsync.core.convert import mozcontact
from davsync.sources.onefile import OneFileSource


class MozContactsSource(OneFileSource):
    what = "contacts export (JSON)"

    def split(self, data: bytes) -> tuple[list[str], Any]:
        return mozcontact.export_to_vcards(data), None

    def join(self, texts: list[str], rest: Any) -> bytes:
        contacts = [mozcontact.from_vcard(text, str(index + 1))
                    for index, text in enumerate(texts)]
        return mozcontact.serialize_export(contacts).encode("utf-8")
