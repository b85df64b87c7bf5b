"""One .vcf holding many vCards, or one .ics holding many events and tasks (what phones,
Thunderbird and Evolution export), over `core.convert.singlefile`.

Cards are kept byte for byte; a calendar keeps its own properties, unused VTIMEZONEs and
components without UID (the `CalendarRest`) through every rewrite.
"""

from __future__ import annotations

from typing import Any

from davsync.core.convert import singlefile
from davsync.core.item import Item, parse_item
from davsync.sources.onefile import OneFileSource


class SingleFileSource(OneFileSource):
    what = "file"

    def split(self, data: bytes) -> tuple[list[str], Any]:
        if self.kind == "contacts":  # an empty .vcf holds no cards (one with none written)
            cards = singlefile.split_vcards(data) if data.strip() else []
            return [item.text for item in cards], None
        items, rest = singlefile.split_calendar(data)
        return [item.text for item in items], rest

    def join(self, texts: list[str], rest: Any) -> bytes:
        items = [self._item(text) for text in texts]
        if self.kind == "contacts":
            return singlefile.join_vcards(items).encode("utf-8")
        return singlefile.join_calendar(items, rest).encode("utf-8")

    def empty_rest(self) -> Any:
        return None if self.kind == "contacts" else singlefile.CalendarRest.empty()

    def _item(self, text: str) -> Item:
        return parse_item(text, self.kind)
