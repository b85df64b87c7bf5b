"""The two kinds of collection davsync syncs, and the file suffix and media type each kind's
items carry.

Its own module so that scanning a device folder never imports the vCard/iCalendar parser.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["contacts", "calendars"]

SUFFIX: Final = {"contacts": ".vcf", "calendars": ".ics"}
# The Content-Type of an item's body on the wire (PUT of one item, or of a whole collection).
MEDIA_TYPE: Final = {"contacts": "text/vcard; charset=utf-8",
                     "calendars": "text/calendar; charset=utf-8"}


def noun(kind: Kind) -> str:
    """What one collection of `kind` is called (also its `[server]` key)."""
    return "addressbook" if kind == "contacts" else "calendar"
