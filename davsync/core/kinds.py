"""The two kinds of collection davsync syncs, and the file suffix each kind's items carry.

Its own module so that scanning a device folder never imports the vCard/iCalendar parser.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["contacts", "calendars"]

SUFFIX: Final = {"contacts": ".vcf", "calendars": ".ics"}
