"""One file holding many items: a `.vcf` with many vCards, an `.ics` with many events.

`split_vcards` cuts a .vcf into its cards, each kept byte for byte; `split_calendar` makes one
VCALENDAR per UID (the master and its RECURRENCE-ID overrides together, with the VTIMEZONEs they
use). What no item owns (calendar properties such as X-WR-CALNAME, VTIMEZONEs no event uses,
components without a UID such as VFREEBUSY) is the `CalendarRest`, which the caller keeps and
hands to `join_calendar`, so writing the file back loses nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import icalendar

from davsync.core.convert import (
    ConvertError,
    Occurrences,
    Unconverted,
    derived_uid,
    record_name,
)
from davsync.core.item import CAL_ITEMS, Item, content_hash, parse_item, with_uid
from davsync.core.vtext import ParseError, check_size, decode, parse

_VCARD_START = re.compile(r"^[ \t]*BEGIN[ \t]*:[ \t]*VCARD[ \t\r]*$", re.IGNORECASE | re.MULTILINE)
# The UID a card that cannot be parsed names (unfolded lines only; None is safe: it only keeps
# the sync from knowing which synced item the card is).
_UID_LINE = re.compile(r"^UID:([^\r\n]+)", re.IGNORECASE | re.MULTILINE)
_NOT_ITEMS = frozenset({"VERSION", "PRODID", "CALSCALE", "METHOD"})
PRODID = "-//davsync//convert//EN"


# ---- .vcf ----

def split_vcards(data: bytes | str) -> list[Item]:
    """The cards of a .vcf, each its own text unchanged; a card without UID gets one derived
    from its content hash (and its rank among identical cards), so a re-scan finds the same."""
    text = decode(data) if isinstance(data, bytes) else data
    check_size(len(text))
    try:
        parse(text)  # the whole file well-formed, within the parser's bounds
    except ParseError as exc:
        raise ParseError(f"not a vCard file: {exc}") from None
    seen = Occurrences()
    return [_with_uid(_card(piece, index), seen) for index, piece in enumerate(_pieces(text))]


def split_vcard_records(data: bytes | str) -> list[Item | Unconverted]:
    """The cards of a .vcf as `split_vcards` gives them, except that a card that is not one
    vCard comes back as its text (`Unconverted`), to be written back unchanged. ParseError
    only for a file that does not start with a card, or is too large."""
    text = decode(data) if isinstance(data, bytes) else data
    check_size(len(text))
    seen = Occurrences()
    records: list[Item | Unconverted] = []
    for index, piece in enumerate(_pieces(text)):
        try:
            records.append(_with_uid(_card(piece, index), seen))
        except ConvertError as exc:
            found = _UID_LINE.search(piece)
            records.append(Unconverted(piece, exc, found.group(1).strip() if found else None))
    return records


def _with_uid(item: Item, seen: Occurrences) -> Item:
    if item.uid is not None:
        return item
    return with_uid(item, derived_uid("vcf", seen.key(item.hash)))


def _pieces(text: str) -> Iterator[str]:
    """Each card's text, from its BEGIN:VCARD to the next one (a card's own check then finds
    anything else that crept in)."""
    starts = [m.start() for m in _VCARD_START.finditer(text)]
    if not starts or text[: starts[0]].strip():
        raise ParseError("not a vCard file: it does not start with BEGIN:VCARD")
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        yield text[begin:end].strip() + "\r\n"


def _card(piece: str, index: int) -> Item:
    try:
        return parse_item(piece, "contacts")
    except ParseError as exc:
        raise ConvertError(record_name(index), f"not one vCard: {exc}") from None


def join_vcards(items: Iterable[Item | Unconverted]) -> str:
    """One .vcf holding `items` in order, each with CRLF line ends; a card kept as it was read
    (`Unconverted`) is written back byte for byte."""
    return "".join(str(item.raw) if isinstance(item, Unconverted) else _crlf(item.text)
                   for item in items)


def _crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.splitlines() if line)


# ---- .ics ----

@dataclass(frozen=True)
class CalendarRest:
    """What a calendar file holds besides its items, as a VCALENDAR text: the calendar's own
    properties in order, VTIMEZONEs no item uses, and components without a UID."""

    text: str

    @classmethod
    def empty(cls) -> CalendarRest:
        """The rest of a calendar file not written yet."""
        cal = icalendar.Calendar()
        cal.add("VERSION", "2.0")
        cal.add("PRODID", PRODID)
        return cls(cal.to_ical().decode("utf-8"))


def split_calendar(data: bytes | str) -> tuple[list[Item], CalendarRest]:
    """The events, tasks and journals of an .ics grouped into one item per UID, and the rest."""
    with _as_parse_error("not an iCalendar file"):
        return _split_calendar(_read_calendar(data))


@contextmanager
def _as_parse_error(what: str) -> Iterator[None]:
    """icalendar's errors on malformed text and values are not documented (ValueError,
    KeyError, TypeError, ... from it and dateutil): each becomes a ParseError."""
    try:
        yield
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"{what}: {str(exc)[:200]}") from None


def _split_calendar(cal: Any) -> tuple[list[Item], CalendarRest]:
    groups, others = _group(cal)
    timezones = {str(c.get("TZID", "")): c for c in cal.subcomponents if c.name == "VTIMEZONE"}
    used: set[str] = set()
    items = []
    for index, (uid, comps) in enumerate(groups.items()):
        tzids = sorted({tzid for comp in comps for tzid in _tzids(comp)})
        used.update(tzids)
        item_cal = _calendar_like(cal, props=_NOT_ITEMS - {"METHOD"})
        for tzid in tzids:
            item_cal.add_component(timezones.get(tzid) or _timezone(tzid))
        for comp in comps:
            item_cal.add_component(comp)
        items.append(_event_item(item_cal, index, uid))
    return items, _rest(cal, [tz for tzid, tz in timezones.items() if tzid not in used], others)


def _read_calendar(data: bytes | str) -> Any:
    text = decode(data) if isinstance(data, bytes) else data
    try:
        roots = parse(text)  # bounded; icalendar itself is not
    except ParseError as exc:
        raise ParseError(f"not an iCalendar file: {exc}") from None
    if len(roots) != 1 or roots[0].name != "VCALENDAR":
        raise ParseError("not an iCalendar file: expected one VCALENDAR")
    return icalendar.Calendar.from_ical(text)


def _group(cal: Any) -> tuple[dict[str, list[Any]], list[Any]]:
    """Events, tasks and journals by UID in file order (one without UID gets a derived one);
    the other non-timezone components."""
    groups: dict[str, list[Any]] = {}
    others: list[Any] = []
    seen = Occurrences()
    for comp in cal.subcomponents:
        if comp.name in CAL_ITEMS:
            uid = str(comp.get("UID", "")).strip()
            if not uid:
                uid = derived_uid("ics", seen.key(_component_hash(comp)))
                comp.add("UID", uid)
            groups.setdefault(uid, []).append(comp)
        elif comp.name != "VTIMEZONE":
            others.append(comp)
    return groups, others


def _component_hash(comp: Any) -> str:
    return content_hash(parse(comp.to_ical().decode("utf-8"))[0])


def _tzids(comp: Any) -> Iterator[str]:
    """Every TZID a component and its subcomponents (VALARM) refer to."""
    for sub in comp.walk():
        for value in sub.values():
            for one in value if isinstance(value, list) else [value]:
                params = getattr(one, "params", None)
                if params and params.get("TZID"):
                    yield str(params["TZID"])


def _timezone(tzid: str) -> Any:
    """A VTIMEZONE for a TZID the file uses without defining it: built from the time zone
    database when it knows the name, else an empty one naming it (servers accept that)."""
    try:
        return icalendar.Timezone.from_tzid(tzid)
    except Exception:  # an unknown or malformed name: icalendar raises several kinds
        timezone = icalendar.Timezone()
        timezone.add("TZID", tzid)
        return timezone


def _calendar_like(cal: Any, props: Iterable[str]) -> Any:
    out = icalendar.Calendar()
    wanted = set(props)
    for name, value in cal.property_items(recursive=False):
        if name in wanted and name not in out:
            out.add(name, value)
    if "VERSION" not in out:
        out.add("VERSION", "2.0")
    if "PRODID" not in out:
        out.add("PRODID", PRODID)
    return out


def _event_item(cal: Any, index: int, uid: str) -> Item:
    try:
        return parse_item(cal.to_ical().decode("utf-8"), "calendars")
    except ParseError as exc:
        raise ConvertError(record_name(index, uid), str(exc)) from None


def _rest(cal: Any, timezones: list[Any], others: list[Any]) -> CalendarRest:
    rest = icalendar.Calendar()
    for name, value in cal.property_items(recursive=False):
        if name not in {"BEGIN", "END"}:
            rest.add(name, value)
    for comp in [*timezones, *others]:
        rest.add_component(comp)
    return CalendarRest(rest.to_ical().decode("utf-8"))


def join_calendar(items: Iterable[Item], rest: CalendarRest) -> str:
    """One .ics: the rest's properties, each VTIMEZONE once, the items' components in order,
    then the rest's other components. ParseError if an item or the rest is not iCalendar."""
    with _as_parse_error("cannot write the calendar file"):
        return _join_calendar(items, _read_calendar(rest.text))


def _join_calendar(items: Iterable[Item], base: Any) -> str:
    out = icalendar.Calendar()
    for name, value in base.property_items(recursive=False):
        if name not in {"BEGIN", "END"}:
            out.add(name, value)
    timezones: dict[str, Any] = {}
    components: list[Any] = []
    for item in items:
        for comp in _read_calendar(item.text).subcomponents:
            if comp.name == "VTIMEZONE":
                timezones.setdefault(str(comp.get("TZID", "")), comp)
            else:
                components.append(comp)
    for comp in base.subcomponents:
        if comp.name == "VTIMEZONE":
            timezones.setdefault(str(comp.get("TZID", "")), comp)
    for comp in [*timezones.values(), *components,
                 *(c for c in base.subcomponents if c.name != "VTIMEZONE")]:
        out.add_component(comp)
    return str(out.to_ical().decode("utf-8"))


__all__ = ["PRODID", "CalendarRest", "join_calendar", "join_vcards", "split_calendar",
           "split_vcard_records", "split_vcards"]
