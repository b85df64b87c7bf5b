"""One .vcf with many cards and one .ics with many events: split into items, join back."""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from davsync.core.convert import ConvertError, Unconverted
from davsync.core.convert.singlefile import (
    CalendarRest,
    join_calendar,
    join_vcards,
    split_calendar,
    split_calendar_records,
    split_vcard_records,
    split_vcards,
)
from davsync.core.item import Item, parse_item
from davsync.core.vtext import ParseError, parse

DATA = Path(__file__).parent.parent / "fixtures" / "data"
VCF = (DATA / "thunderbird_contacts.vcf").read_bytes()
ICS = (DATA / "evolution_calendar.ics").read_bytes()
BERLIN = "/freeassociation.sourceforge.net/Europe/Berlin"
JOUR_FIXE = "20241102T184012Z-1234-1000-1-0@laptop"


def test_vcf_splits_into_its_cards_byte_for_byte() -> None:
    items = split_vcards(VCF)
    assert [i.uid for i in items[:2]] == ["3b1f5c2e-9d4a-4e8b-a7c6-1f2e3d4c5b6a",
                                          "urn:uuid:0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"]
    third = VCF.index(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P")
    assert join_vcards(items[:2]).encode() == VCF[:third]
    assert "ngström" in items[0].text and "\r\n ht und deshalb" in items[0].text  # folds kept


def test_identical_cards_without_uid_get_distinct_stable_uids() -> None:
    first, again = split_vcards(VCF), split_vcards(VCF.decode())
    assert first[2].uid and first[3].uid and first[2].uid != first[3].uid
    assert [i.uid for i in first] == [i.uid for i in again]


def test_joined_vcf_splits_into_the_same_items() -> None:
    items = split_vcards(VCF)
    again = split_vcards(join_vcards(items))
    assert [(i.uid, i.hash) for i in again] == [(i.uid, i.hash) for i in items]


@pytest.mark.parametrize("char", ["\u2028", "\x1e", "\x85", "\x0c"])
def test_a_value_holding_a_unicode_line_separator_is_written_back_unchanged(char: str) -> None:
    card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:A\r\nNOTE:x{char}y\r\nEND:VCARD\r\n"
    assert join_vcards(split_vcards(card)) == card
    broken = f"BEGIN:VEVENT\r\nUID:b\r\nDESCRIPTION:x{char}y\r\nno colon\r\nEND:VEVENT\r\n"
    records, rest = split_calendar_records(f"BEGIN:VCALENDAR\r\n{broken}END:VCALENDAR\r\n")
    assert [r.raw for r in records if isinstance(r, Unconverted)] == [broken]
    assert broken in join_calendar(records, rest)


def test_a_broken_card_is_named_by_its_position() -> None:
    broken = VCF.replace(b"N:Sharma;Rahul;;;\r\n", b"N Sharma\r\n")
    with pytest.raises(ParseError, match="without ':'"):
        split_vcards(broken)
    wrong = VCF + b"BEGIN:VCARD\r\nEND:VCARD\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n"
    with pytest.raises(ConvertError, match="record 5: not one vCard"):
        split_vcards(wrong)
    with pytest.raises(ParseError, match="does not start with BEGIN:VCARD"):
        split_vcards(b"BEGIN:VEVENT\r\nEND:VEVENT\r\n" + VCF)


def _defined(item: Item) -> list[str]:
    """The TZIDs of the VTIMEZONEs an item carries."""
    return [p.value for c in parse(item.text)[0].children if c.name == "VTIMEZONE"
            for p in c.props if p.name == "TZID"]


def _by_uid(items: list[Item]) -> dict[str, Item]:
    return {i.uid or "": i for i in items}


def test_ics_gives_one_item_per_uid_with_its_overrides_and_timezones() -> None:
    items, _ = split_calendar(ICS)
    by_uid = _by_uid(items)
    assert len(items) == 4
    assert by_uid[JOUR_FIXE].count == 2  # master + RECURRENCE-ID override
    assert _defined(by_uid[JOUR_FIXE]) == [BERLIN, "America/New_York"]
    text = by_uid[JOUR_FIXE].text
    assert "EXDATE" in text and "RRULE:FREQ=WEEKLY" in text and "BEGIN:VALARM" in text
    assert "METHOD" not in text  # a CalDAV resource must not carry METHOD
    assert "VTIMEZONE" not in by_uid["birthday-zoe@laptop"].text
    assert "DTSTART;VALUE=DATE:19850412" in by_uid["birthday-zoe@laptop"].text


def test_the_rest_keeps_what_no_item_owns() -> None:
    _, rest = split_calendar(ICS)
    for kept in ["X-WR-CALNAME:Familie & Arbeit", "METHOD:PUBLISH", "TZID:Asia/Tokyo",
                 "BEGIN:VFREEBUSY", "X-EVOLUTION-DATA-REVISION"]:
        assert kept in rest.text
    assert "BEGIN:VEVENT" not in rest.text


def test_joined_ics_splits_into_the_same_items_and_rest() -> None:
    items, rest = split_calendar(ICS)
    joined = join_calendar(items, rest)
    again, rest_again = split_calendar(joined)
    assert [(i.uid, i.hash) for i in again] == [(i.uid, i.hash) for i in items]
    assert parse_item(rest_again.text.replace("BEGIN:VFREEBUSY", "BEGIN:VTODO")
                      .replace("END:VFREEBUSY", "END:VTODO"), "calendars").hash == \
        parse_item(rest.text.replace("BEGIN:VFREEBUSY", "BEGIN:VTODO")
                   .replace("END:VFREEBUSY", "END:VTODO"), "calendars").hash


def test_an_event_without_uid_keeps_its_derived_uid_across_scans_and_writes() -> None:
    items, rest = split_calendar(ICS)
    derived = next(i for i in items if "Urlaub" in i.text).uid
    assert derived == next(i for i in split_calendar(ICS)[0] if "Urlaub" in i.text).uid
    assert derived in join_calendar(items, rest)


def test_a_tzid_without_vtimezone_gets_one_from_the_time_zone_database() -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\n"
            "DTSTAMP:20250101T000000Z\r\nDTSTART;TZID=Europe/Paris:20250106T100000\r\n"
            "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20250101T000000Z\r\n"
            "DTSTART;TZID=Nowhere/Special:20250106T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    items, rest = split_calendar(text)
    assert "TZID:Europe/Paris" in items[0].text and "TZOFFSETTO:+0100" in items[0].text
    assert "TZID:Nowhere/Special" in items[1].text
    again, _ = split_calendar(join_calendar(items, rest))  # the file can be written back
    assert [(i.uid, i.hash) for i in again] == [(i.uid, i.hash) for i in items]


def test_join_into_a_new_file() -> None:
    items, _ = split_calendar(ICS)
    joined = join_calendar(items[:1], CalendarRest.empty())
    assert "PRODID:-//davsync//convert//EN" in joined
    assert [i.uid for i in split_calendar(joined)[0]] == [JOUR_FIXE]


@pytest.mark.parametrize("data", [b"", b"BEGIN:VCARD\r\nEND:VCARD\r\n",
                                  b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\n"
                                  b"END:VCALENDAR\r\n"])
def test_a_file_that_is_no_calendar_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        split_calendar(data)


# ---- properties ----

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata"]
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n"), max_size=20)


@st.composite
def calendars(draw: st.DrawFn) -> str:
    cal = icalendar.Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", "-//test//EN")
    if draw(st.booleans()):
        # icalendar writes an X- property's line breaks unescaped (and then refuses its own
        # line): generate only what it can write. Read from a file, `\n` stays escaped.
        cal.add("X-WR-CALNAME", draw(TEXT.filter(lambda t: "\n" not in t)))
    for number in range(draw(st.integers(1, 5))):
        uid = draw(st.sampled_from(["a", "b", "c", ""]))
        event = icalendar.Event()
        if uid:
            event.add("UID", uid)
        event.add("DTSTAMP", datetime(2025, 1, 1, tzinfo=ZoneInfo("UTC")))
        event.add("SUMMARY", draw(TEXT))
        start = datetime(2025, 1, 1, 9) + timedelta(hours=number)
        zone = draw(st.sampled_from([None, *ZONES]))
        event.add("DTSTART", date(2025, 1, 1 + number) if zone is None
                  else start.replace(tzinfo=ZoneInfo(zone)))
        if uid and number and zone and draw(st.booleans()):
            event.add("RECURRENCE-ID", start.replace(tzinfo=ZoneInfo(zone)))
        cal.add_component(event)
    return str(cal.to_ical().decode())


@settings(max_examples=40, deadline=None)
@given(calendars())
def test_any_calendar_splits_and_joins_back(text: str) -> None:
    items, rest = split_calendar(text)
    assert sum(i.count for i in items) == text.count("BEGIN:VEVENT")
    for item in items:
        used = {p.params[0][1] for c in parse(item.text)[0].walk() for p in c.props
                if p.params and p.params[0][0] == "TZID"}
        assert used <= set(_defined(item))
    again, _ = split_calendar(join_calendar(items, rest))
    assert [(i.uid, i.hash) for i in again] == [(i.uid, i.hash) for i in items]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["VEVENT", "VTIMEZONE", "VALARM", "VCARD"]),
       st.sampled_from(["DTSTART", "UID", "RRULE", "EXDATE;TZID=X", "X-Y", "TRIGGER"]))
def test_hostile_files_raise_only_parse_errors(value: str, comp: str, prop: str) -> None:
    ics = (f"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nBEGIN:{comp}\r\n{prop}:{value}\r\n"
           f"END:{comp}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    with contextlib.suppress(ParseError):
        join_calendar(*split_calendar(ics))
    with contextlib.suppress(ParseError):
        join_vcards(split_vcards(f"BEGIN:VCARD\r\n{prop}:{value}\r\nEND:VCARD\r\n{value}"))


def test_a_malformed_value_is_kept_not_refused() -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\n"
            "DTSTART:garbage\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    items, rest = split_calendar(text)
    assert "DTSTART:garbage" in items[0].text
    assert "DTSTART:garbage" in join_calendar(items, rest)


def test_a_card_that_is_not_one_vcard_is_kept_byte_for_byte() -> None:
    broken = "BEGIN:VCARD\nVERSION:3.0\nUID:b\nFN:Bob\n"
    vcf = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Ann\r\nEND:VCARD\r\n" + broken +
           "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Cy\r\nEND:VCARD\r\n")
    records = split_vcard_records(vcf)
    assert [r.uid for r in records] == ["a", "b", "c"]
    assert isinstance(records[1], Unconverted) and records[1].raw == broken.strip() + "\r\n"
    assert records[1].error.why.startswith("not one vCard")
    assert join_vcards(records).replace("\r\n", "\n").count(broken) == 1


_CARD_LINES = st.sampled_from(["BEGIN:VCARD", "END:VCARD", "VERSION:3.0", "UID:u", "UID:v",
                               "FN:A", " folded", "no colon", "", "\rBEGIN:VCARD", " BEGIN:VCARD",
                               "BEGIN:VEVENT", "END:VEVENT"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(_CARD_LINES, st.text(max_size=30)), max_size=30),
       st.sampled_from(["\r\n", "\n", "\r"]))
# A CR alone ends a line: a card begun after one is cut there, before and after a rewrite.
@example(["\rBEGIN:VCARD", "END:VCARD", "END:VCARD"], "\r\n")
def test_hostile_vcards_keep_what_they_cannot_read_or_raise_a_parse_error(
        lines: list[str], end: str) -> None:
    vcf = "BEGIN:VCARD" + end + end.join(lines) + end
    try:
        records = split_vcard_records(vcf)
    except ParseError:
        return
    again = split_vcard_records(join_vcards(records))
    assert [r.uid for r in again] == [r.uid for r in records]
    assert [r.raw if isinstance(r, Unconverted) else r.hash for r in again] == \
        [r.raw if isinstance(r, Unconverted) else r.hash for r in records]


def _event(uid: str, body: str = "DTSTART:20240102T100000Z\r\n") -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:S {uid}\r\n{body}END:VEVENT\r\n"


def test_a_broken_event_group_comes_back_as_its_text_and_the_others_as_items() -> None:
    broken = _event("b", "DTSTART:20240102T100000Z\r\nnot a line\r\n")
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n" + _event("a") + broken
            + _event("c") + "END:VCALENDAR\r\n")
    records, rest = split_calendar_records(text)
    assert [r.uid for r in records] == ["a", "b", "c"]
    bad = records[1]
    assert isinstance(bad, Unconverted) and bad.raw == broken
    assert bad.error.record == "2 (S b)" and "line without ':'" in bad.error.why
    joined = join_calendar(records, rest)
    assert broken in joined
    again, _ = split_calendar_records(joined)
    assert [(r.uid, r.hash) for r in again if isinstance(r, Item)] == \
        [(r.uid, r.hash) for r in records if isinstance(r, Item)]
    with pytest.raises(ConvertError, match="record 2"):
        split_calendar(text)


def test_a_folded_end_line_inside_a_value_does_not_cut_the_event() -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            + _event("a", "DTSTART:20240102T100000Z\r\nDESCRIPTION:x\r\n END:VEVENT\r\n")
            + "END:VCALENDAR\r\n")
    (item,), _ = split_calendar_records(text)
    assert isinstance(item, Item) and item.uid == "a"


_LINES = st.sampled_from(["BEGIN:VEVENT", "END:VEVENT", "BEGIN:VALARM", "END:VALARM",
                          "BEGIN:VTIMEZONE", "END:VTIMEZONE", "UID:u", "UID:v", "TZID:X",
                          "DTSTART;TZID=X:20240101T100000", "RECURRENCE-ID:20240101T100000Z",
                          "SUMMARY:s", " folded", "no colon", "DTSTART:garbage", "", "X-A;B=\"",
                          "BEGIN:VCALENDAR", "END:VCALENDAR", "RRULE:FREQ=NOPE"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_LINES, st.text(max_size=30)), max_size=40))
# Records whose END line is missing, cut by a VTIMEZONE that a rewrite moves to the top: what
# follows them (a stray END, a VALARM outside any event, the rest's components) must not
# become theirs.
@example(["BEGIN:VEVENT", "BEGIN:VTIMEZONE", "END:VTIMEZONE", "END:VEVENT"])
@example(["BEGIN:VEVENT", "BEGIN:VTIMEZONE", "END:VTIMEZONE", "BEGIN:VALARM", "no colon"])
@example(["BEGIN:VEVENT", "BEGIN:VTIMEZONE", "END:VTIMEZONE", "BEGIN:VALARM", "UID:u",
          "END:VALARM"])
@example(["END:VEVENT", "BEGIN:VTIMEZONE", "END:VTIMEZONE"])  # a stray line first: stays first
@example(["BEGIN:VALARM", "no colon", "BEGIN:VALARM", "UID:u", "END:VALARM"])
@example(["BEGIN:VALARM", "UID:u", "BEGIN:VALARM", "BEGIN:VEVENT", "UID:u"])
@example(["BEGIN:VEVENT", "\x1e"])  # a line break to str.splitlines, text to iCalendar
# Every record lacks its END line and the rest holds a VALARM: the rest goes where the open
# VALARM is ended by beginning another, not into the open event after it.
@example(["BEGIN:VALARM", "BEGIN:VALARM", "END:VALARM", "BEGIN:VEVENT"])
# A TZID no database knows gets a VTIMEZONE without rules, which icalendar cannot read back.
@example(["BEGIN:VEVENT", "DTSTART;TZID=X:20240101T100000", "END:VEVENT"])
def test_hostile_calendars_keep_what_they_cannot_read_or_raise_a_parse_error(
        lines: list[str]) -> None:
    text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "\r\n".join(lines) + "\r\nEND:VCALENDAR\r\n"
    try:
        records, rest = split_calendar_records(text)
    except ParseError:
        return
    joined = join_calendar(records, rest)
    for record in records:
        if isinstance(record, Unconverted):
            assert str(record.raw) in joined
    again, rest_again = split_calendar_records(joined)
    assert sorted(r.uid or "" for r in again) == sorted(r.uid or "" for r in records)
    assert [r.raw for r in again if isinstance(r, Unconverted)] == \
        [r.raw for r in records if isinstance(r, Unconverted)]
    assert rest_again == rest


def test_a_stray_line_outside_any_event_stays_with_the_text_before_it() -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n" + _event("a")
            + "BEGIN:VEVENT\r\nUID:b\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")
    records, rest = split_calendar_records(text)
    assert [r.uid for r in records] == ["a", "b", None]
    assert isinstance(records[1], Unconverted) and isinstance(records[2], Unconverted)
    assert records[2].raw == "BEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\nEND:VEVENT\r\n"
    joined = join_calendar(records, rest)
    assert joined.endswith("BEGIN:VEVENT\r\nUID:b\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\n"
                           "END:VTIMEZONE\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    assert [r.uid for r in split_calendar_records(joined)[0]] == ["a", "b", None]
