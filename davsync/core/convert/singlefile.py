"""One file holding many items: a `.vcf` with many vCards, an `.ics` with many events.

`split_vcards` cuts a .vcf into its cards, each kept byte for byte; `split_calendar` makes one
VCALENDAR per UID (the master and its RECURRENCE-ID overrides together, with the VTIMEZONEs they
use). What no item owns (calendar properties such as X-WR-CALNAME, VTIMEZONEs no event uses,
components without a UID such as VFREEBUSY) is the `CalendarRest`, which the caller keeps and
hands to `join_calendar`, so writing the file back loses nothing. `split_calendar_records`
cuts the file at its components' BEGIN/END lines first and reads each on its own, so a UID
whose components cannot be read comes back as their text (`Unconverted`) while the others
are items; only a file that is not one VCALENDAR is refused as a whole.
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

# A BEGIN:VCARD line: a CR alone ends a line too (as for the parser and `_LINE`), so a card
# starting after one is cut there, as it is after the CR LF a rewrite puts in its place.
_VCARD_START = re.compile(r"(?:\A|(?<=[\r\n]))[ \t]*BEGIN[ \t]*:[ \t]*VCARD[ \t]*(?=[\r\n]|\Z)",
                          re.IGNORECASE)
# The UID a card that cannot be parsed names (unfolded lines only; None is safe: it only keeps
# the sync from knowing which synced item the card is).
_UID_LINE = re.compile(r"^UID:([^\r\n]+)", re.IGNORECASE | re.MULTILINE)
_SUMMARY_LINE = re.compile(r"^SUMMARY(?:;[^:\r\n]*)?:([^\r\n]+)", re.IGNORECASE | re.MULTILINE)
_UNFOLD = re.compile(r"\r?\n[ \t]")
# A line and its end: only CR LF, LF or CR end a line of vCard/iCalendar text (str.splitlines
# also ends one at U+2028, \x1e and others, which are text inside a value).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
# A component's BEGIN or END line in an .ics (a line starting with white space continues the
# line before it, so it never is one).
_BEGIN_END = re.compile(r"(BEGIN|END)[ \t]*:[ \t]*([A-Za-z0-9-]+)[ \t]*\r?\n?\Z", re.IGNORECASE)
# Components that only ever stand at the top of a VCALENDAR: one of these starting inside
# another ends that one (whose END line is missing).
_TOP_LEVEL = frozenset({"VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VTIMEZONE", "VCALENDAR"})
_INVALID = "not valid iCalendar"
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
    lines = (line.rstrip("\r\n") for line in _LINE.findall(text))
    return "".join(line + "\r\n" for line in lines if line)


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
    """The events, tasks and journals of an .ics grouped into one item per UID, and the rest;
    ParseError if any of them cannot be read (`split_calendar_records` keeps those)."""
    records, rest = split_calendar_records(data)
    for record in records:
        if isinstance(record, Unconverted):
            raise record.error
    return [r for r in records if isinstance(r, Item)], rest


def split_calendar_records(data: bytes | str) -> tuple[list[Item | Unconverted], CalendarRest]:
    """The items of an .ics as `split_calendar` gives them, except that a UID's components
    (master and overrides) of which one cannot be read or converted come back together as
    their text (`Unconverted`), to be written back unchanged in their place. ParseError only
    for a file that is not one VCALENDAR, is too large, or whose own properties are broken."""
    text = decode(data) if isinstance(data, bytes) else data
    check_size(len(text))
    header, pieces = _cut_calendar(text)
    with _as_parse_error("not an iCalendar file"):
        cal = _read_calendar(f"BEGIN:VCALENDAR\r\n{''.join(header)}END:VCALENDAR\r\n")
        return _split_records(cal, _keep_strays_with_their_text(map(_Piece.read, pieces)))


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


@dataclass
class _Piece:
    """One component of the file as it was read, and what icalendar made of it (None, with
    `why`, when it cannot be read); `uid` as it names itself, even when unreadable."""

    raw: str
    comp: Any
    why: str
    uid: str
    summary: str

    @classmethod
    def read(cls, raw: str) -> _Piece:
        try:
            with _as_parse_error(_INVALID):
                subs = _read_calendar(f"BEGIN:VCALENDAR\r\n{raw}END:VCALENDAR\r\n",
                                      _INVALID).subcomponents
            if len(subs) != 1:
                raise ParseError(f"{_INVALID}: not one component")
        except ParseError as exc:
            return cls.unreadable(raw, str(exc))
        comp = subs[0]
        return cls(raw, comp, "", str(comp.get("UID", "")).strip(), str(comp.get("SUMMARY", "")))

    @classmethod
    def unreadable(cls, raw: str, why: str) -> _Piece:
        flat = _UNFOLD.sub("", raw)
        found, summary = _UID_LINE.search(flat), _SUMMARY_LINE.search(flat)
        uid, name = (m.group(1).strip() if m else "" for m in (found, summary))
        return cls(raw, None, why, uid, name)


def _keep_strays_with_their_text(pieces: Iterable[_Piece]) -> list[_Piece]:
    """An unreadable piece that does not start with a top-level BEGIN (a stray END line, a
    VALARM standing outside any event) joins the piece before it, which is then kept as read
    too: how such a piece is cut depends on the text before it, so only there does a rewrite
    give it back as the same record (on its own, after another record whose END line is
    missing, it would end or continue that one)."""
    kept: list[_Piece] = []
    for piece in pieces:
        if kept and piece.comp is None and not _starts_top_level(piece.raw):
            before = kept.pop()
            piece = _Piece.unreadable(before.raw + piece.raw, before.why or piece.why)
        kept.append(piece)
    return kept


def _starts_top_level(raw: str) -> bool:
    mark = _first_mark(raw)
    return mark is not None and mark[0] == "BEGIN" and mark[1] in _TOP_LEVEL


def _starts_with(raw: str, mark: tuple[str, str]) -> bool:
    return _first_mark(raw) == mark


def _first_mark(raw: str) -> tuple[str, str] | None:
    """The BEGIN/END line `raw` starts with, if it does."""
    first = _LINE.match(raw)
    return _delimiter(first[0]) if first else None


def _cut_calendar(text: str) -> tuple[list[str], list[str]]:
    """The calendar's own property lines and the text of each of its components, cut at
    their BEGIN/END lines (a continuation line never is one) without reading anything else,
    so that one broken component costs only itself: a component runs to its own END line, or
    to the BEGIN of the next top-level component when that line is missing."""
    lines = [line if line.endswith(("\n", "\r")) else line + "\r\n"
             for line in _LINE.findall(text)]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or _delimiter(lines[0]) != ("BEGIN", "VCALENDAR"):
        raise ParseError("not an iCalendar file: it does not start with BEGIN:VCALENDAR")
    if _delimiter(lines[-1]) != ("END", "VCALENDAR"):
        raise ParseError("not an iCalendar file: it does not end with END:VCALENDAR "
                         "(truncated file, or more than one calendar?)")
    header, pieces, _ = _cut_lines(lines[1:-1])
    return header, pieces


def _cut_lines(lines: Iterable[str]) -> tuple[list[str], list[str], str | None]:
    """The property lines and component texts of a VCALENDAR's inside, and the name of the
    component left open at the end (None when every component got its END line)."""
    header: list[str] = []
    pieces: list[list[str]] = []
    open_name: str | None = None
    for line in lines:
        mark = _delimiter(line)
        if mark is not None and _starts_piece(mark, open_name):
            pieces.append([line])  # a new component (the one open, if any, lacks its END)
            open_name = mark[1] if mark[0] == "BEGIN" else None
        elif open_name is not None:
            pieces[-1].append(line)
            open_name = None if mark == ("END", open_name) else open_name
        else:
            header.append(line)
    return header, ["".join(piece) for piece in pieces], open_name


def _starts_piece(mark: tuple[str, str], open_name: str | None) -> bool:
    """Whether a BEGIN/END line starts a component of its own when the component `open_name`
    is open (None: none is): it ends one lacking its END line only by beginning the same kind
    again or a top-level one."""
    return open_name is None or mark == ("BEGIN", open_name) \
        or (mark[0] == "BEGIN" and mark[1] in _TOP_LEVEL)


def _delimiter(line: str) -> tuple[str, str] | None:
    found = _BEGIN_END.match(line)
    return None if found is None else (found.group(1).upper(), found.group(2).upper())


def _split_records(cal: Any, pieces: list[_Piece]) -> tuple[list[Item | Unconverted],
                                                            CalendarRest]:
    groups, others = _group(pieces)
    timezones = {str(p.comp.get("TZID", "")): p.comp for p in pieces
                 if p.comp is not None and p.comp.name == "VTIMEZONE"}
    used: set[str] = set()
    records: list[Item | Unconverted] = []
    for index, (uid, group) in enumerate(groups.items()):
        records.append(_record(cal, group, index, uid, timezones, used))
    rest = _rest(cal, [tz for tzid, tz in timezones.items() if tzid not in used], others)
    return records, rest


def _record(cal: Any, group: list[_Piece], index: int, uid: str, timezones: dict[str, Any],
            used: set[str]) -> Item | Unconverted:
    """One UID's item, or its components' text kept as read when one of them is broken."""
    name = next((p.summary for p in group if p.summary), "")
    broken = next((p for p in group if p.comp is None), None)
    if broken is None:
        try:
            return _event_item(cal, [p.comp for p in group], index, uid, timezones, used)
        except ConvertError as exc:
            why = exc.why
    else:
        why = broken.why
    uid_named = group[0].uid or None
    return Unconverted("".join(p.raw for p in group), ConvertError(record_name(index, name), why),
                       uid_named)


def _event_item(cal: Any, comps: list[Any], index: int, uid: str,
                timezones: dict[str, Any], used: set[str]) -> Item:
    tzids = sorted({tzid for comp in comps for tzid in _tzids(comp)})
    item_cal = _calendar_like(cal, props=_NOT_ITEMS - {"METHOD"})
    for tzid in tzids:
        item_cal.add_component(timezones.get(tzid) or _timezone(tzid))
    for comp in comps:
        item_cal.add_component(comp)
    try:
        item = parse_item(item_cal.to_ical().decode("utf-8"), "calendars")
    except ParseError as exc:
        raise ConvertError(record_name(index, uid), str(exc)) from None
    used.update(tzids)
    return item


def _read_calendar(data: bytes | str, what: str = "not an iCalendar file") -> Any:
    text = decode(data) if isinstance(data, bytes) else data
    try:
        roots = parse(text)  # bounded; icalendar itself is not
    except ParseError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if len(roots) != 1 or roots[0].name != "VCALENDAR":
        raise ParseError(f"{what}: expected one VCALENDAR")
    return icalendar.Calendar.from_ical(text)


def _group(pieces: list[_Piece]) -> tuple[dict[str, list[_Piece]], list[Any]]:
    """Events, tasks and journals by UID in file order (one without UID gets a derived one;
    an unreadable component without UID is a group of its own, as is any unreadable one);
    the other readable non-timezone components."""
    groups: dict[str, list[_Piece]] = {}
    others: list[Any] = []
    seen = Occurrences()
    for number, piece in enumerate(pieces):
        if piece.comp is None:
            groups.setdefault(piece.uid or f"\0{number}", []).append(piece)
        elif piece.comp.name in CAL_ITEMS:
            if not piece.uid:
                piece.uid = derived_uid("ics", seen.key(_component_hash(piece.comp)))
                piece.comp.add("UID", piece.uid)
            groups.setdefault(piece.uid, []).append(piece)
        elif piece.comp.name != "VTIMEZONE":
            others.append(piece.comp)
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


def _rest(cal: Any, timezones: list[Any], others: list[Any]) -> CalendarRest:
    rest = icalendar.Calendar()
    for name, value in cal.property_items(recursive=False):
        if name not in {"BEGIN", "END"}:
            rest.add(name, value)
    for comp in [*timezones, *others]:
        rest.add_component(comp)
    return CalendarRest(rest.to_ical().decode("utf-8"))


def join_calendar(items: Iterable[Item | Unconverted], rest: CalendarRest) -> str:
    """One .ics: the rest's properties, each VTIMEZONE once, the rest's other components, then
    the items' components in order (a record kept as it was read: its text unchanged, in its
    place; see `_place_for_rest` for where records kept as read put the rest).
    ParseError if an item or the rest is not iCalendar."""
    with _as_parse_error("cannot write the calendar file"):
        return _join_calendar(items, _read_calendar(rest.text))


def _join_calendar(items: Iterable[Item | Unconverted], base: Any) -> str:
    head = icalendar.Calendar()
    for name, value in base.property_items(recursive=False):
        if name not in {"BEGIN", "END"}:
            head.add(name, value)
    timezones: dict[str, Any] = {}
    body: list[str] = []
    for item in items:
        if isinstance(item, Unconverted):
            body.append(str(item.raw))
            continue
        for comp in _item_components(item.text):
            if comp.name == "VTIMEZONE":
                timezones.setdefault(str(comp.get("TZID", "")), comp)
            else:
                body.append(_text(comp))
    for comp in base.subcomponents:
        if comp.name == "VTIMEZONE":
            timezones.setdefault(str(comp.get("TZID", "")), comp)
    others = [_text(c) for c in base.subcomponents if c.name != "VTIMEZONE"]
    start = _text(head).removesuffix("END:VCALENDAR\r\n")
    rest = [*(_text(tz) for tz in timezones.values()), *others]
    at = _place_for_rest(rest, body)
    return "".join([start, *body[:at], *rest, *body[at:], "END:VCALENDAR\r\n"])


def _item_components(text: str) -> Iterator[Any]:
    """An item's components as icalendar reads them, each on its own, without a VTIMEZONE
    that has no rules (what `_timezone` makes for a name no database knows): icalendar
    refuses to read one back, and it says no more than the TZID the events name, from which
    a split makes it again."""
    for raw in _cut_calendar(text)[1]:
        yield from _components_of(raw)


def _components_of(raw: str) -> list[Any]:
    try:
        return list(_read_calendar(f"BEGIN:VCALENDAR\r\n{raw}END:VCALENDAR\r\n").subcomponents)
    except ValueError:  # dateutil's, on a VTIMEZONE without STANDARD or DAYLIGHT
        if _starts_with(raw, ("BEGIN", "VTIMEZONE")):
            return []
        raise


def _place_for_rest(rest: list[str], body: list[str]) -> int:
    """Where in `body` the rest's components go: the first place (first of all, in a file
    without skipped records) where they are read back as the same components and no record
    kept as read changes. Not before a record that does not start with a top-level BEGIN (a
    stray line first in the file stays first; after a component it would join that one), and
    not after a record left without its END line unless the rest's first component ends it
    (beginning the same kind again or a top-level one); else that record would take the rest
    for its own. When no such place exists, the end: the rest's text is kept either way."""
    mark = _first_mark(rest[0]) if rest else None
    for at in range(len(body) + 1):
        if at < len(body) and not _starts_top_level(body[at]):
            continue
        if mark is None or _starts_piece(mark, _open_at_end(body[at - 1]) if at else None):
            return at
    return len(body)


def _open_at_end(chunk: str) -> str | None:
    """The component a record leaves open (its END line missing), None when it is closed."""
    return _cut_lines(_LINE.findall(chunk))[2]


def _text(comp: Any) -> str:
    return str(comp.to_ical().decode("utf-8"))


__all__ = ["PRODID", "CalendarRest", "join_calendar", "join_vcards", "split_calendar",
           "split_calendar_records", "split_vcard_records", "split_vcards"]
