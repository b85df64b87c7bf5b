"""One .vcf holding many vCards, or one .ics holding many events and tasks (what phones,
Thunderbird and Evolution export), over `core.convert.singlefile`.

Cards are kept byte for byte, and so are a UID's events that cannot be read; a calendar keeps
its own properties, unused VTIMEZONEs and components without UID (the `CalendarRest`) through
every rewrite.
"""

from __future__ import annotations

from typing import Any

from davsync.core.convert import Unconverted, singlefile
from davsync.core.item import Item, parse_item
from davsync.sources.onefile import Entry, OneFileSource


class SingleFileSource(OneFileSource):
    """A card that is not one vCard, or a UID's events that cannot be read (master and
    overrides together), are kept byte for byte in their place; a file that is not one
    vCard list or one VCALENDAR is unavailable."""

    what = "file"

    def split(self, data: bytes) -> tuple[list[Entry], Any]:
        if self.kind == "contacts":  # an empty .vcf holds no cards (one with none written)
            cards = singlefile.split_vcard_records(data) if data.strip() else []
            return [c if isinstance(c, Unconverted) else c.text for c in cards], None
        records, rest = singlefile.split_calendar_records(data)
        return [r if isinstance(r, Unconverted) else r.text for r in records], rest

    def join(self, entries: list[Entry], rest: Any) -> bytes:
        if self.kind == "contacts":
            cards = [e if isinstance(e, Unconverted) else self._item(e) for e in entries]
            return singlefile.join_vcards(cards).encode("utf-8")
        records = [e if isinstance(e, Unconverted) else self._item(e) for e in entries]
        return singlefile.join_calendar(records, rest).encode("utf-8")

    def empty_rest(self) -> Any:
        return None if self.kind == "contacts" else singlefile.CalendarRest.empty()

    def _item(self, text: str) -> Item:
        return parse_item(text, self.kind)
