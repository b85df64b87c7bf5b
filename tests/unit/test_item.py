"""Parsing, UIDs and the content hash of vCard/iCalendar items."""

from __future__ import annotations

import icalendar
import pytest
import vobject

from davsync.core.item import parse_item, with_note, with_uid
from davsync.core.vtext import ParseError, fold

CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:abc-1\r\nFN:Zoë Ångström\r\nN:Ångström;Zoë;;;\r\n"
    "TEL;TYPE=HOME,VOICE:+49 30 1234\r\nPRODID:-//Some//Client//EN\r\nEND:VCARD\r\n"
)
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:ev-1\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\n"
    "RRULE:FREQ=WEEKLY\r\nSUMMARY:Jour fixe\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:ev-1\r\n"
    "DTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260112T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20260112T110000\r\nSUMMARY:Jour fixe (moved)\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_vcard_uid_and_count() -> None:
    item = parse_item(CARD.encode(), "contacts")
    assert item.uid == "abc-1"
    assert item.count == 1


def test_master_with_override_is_one_item_with_two_components() -> None:
    item = parse_item(EVENT.encode(), "calendars")
    assert item.uid == "ev-1"
    assert item.count == 2


@pytest.mark.parametrize(
    ("variant", "same"),
    [
        (CARD.replace("\r\n", "\n"), True),  # LF instead of CRLF
        (CARD.replace("PRODID:-//Some//Client//EN", "PRODID:-//Other//EN"), True),
        (CARD.replace("TYPE=HOME,VOICE", "type=voice;TYPE=home"), True),  # param order/case
        (CARD.replace("FN:Zoë Ångström\r\n", "FN:Zoë Å\r\n ngström\r\n"), True),  # folded
        (CARD.replace("UID:abc-1\r\nFN:Zoë Ångström", "FN:Zoë Ångström\r\nUID:abc-1"), True),
        (CARD.replace("+49 30 1234", "+49 30 9999"), False),
        (CARD.replace("Zoë", "Zoe"), False),
    ],
)
def test_hash_ignores_reserialization_but_not_edits(variant: str, same: bool) -> None:
    a = parse_item(CARD.encode(), "contacts").hash
    b = parse_item(variant.encode(), "contacts").hash
    assert (a == b) is same


def test_hash_ignores_dtstamp_and_component_order() -> None:
    a = parse_item(EVENT.encode(), "calendars")
    parts = EVENT.split("BEGIN:VEVENT")
    swapped = parts[0] + "BEGIN:VEVENT" + parts[2].replace("END:VCALENDAR\r\n", "") + \
        "BEGIN:VEVENT" + parts[1] + "END:VCALENDAR\r\n"
    b = parse_item(swapped.replace("20260101T000000Z", "20270101T000000Z").encode(), "calendars")
    assert a.hash == b.hash


def test_hash_ignores_the_order_of_rrule_parts_but_not_their_values() -> None:
    """Xandikos stores RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU as FREQ=YEARLY;BYDAY=2SU;BYMONTH=3."""
    rule = "RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=12\r\n"
    event = EVENT.replace("END:VEVENT", rule + "END:VEVENT", 1)
    a = parse_item(event.encode(), "calendars").hash
    reordered = event.replace(rule, "RRULE:COUNT=12;FREQ=WEEKLY;BYDAY=TU\r\n")
    assert parse_item(reordered.encode(), "calendars").hash == a
    edited = event.replace(rule, "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=12\r\n")
    assert parse_item(edited.encode(), "calendars").hash != a


def test_non_utf8_bytes_are_decoded_not_refused() -> None:
    latin = CARD.replace("Zoë Ångström", "Zoë Ångström").encode("cp1252")
    item = parse_item(latin, "contacts")
    assert "Zoë Ångström" in item.text
    assert item.hash == parse_item(CARD.encode(), "contacts").hash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BEGIN:VCARD\r\nFN:x\r\n", "never closed"),
        ("FN:x\r\n", "outside any BEGIN"),
        ("BEGIN:VCARD\r\nFN x\r\nEND:VCARD\r\n", "without ':'"),
        ("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "expected one VCARD"),
        ("BEGIN:VCARD\r\nEND:VEVENT\r\n", "does not close"),
        ("", "no BEGIN"),
    ],
)
def test_malformed_vcards_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_item(text.encode(), "contacts")


def test_calendar_resource_with_two_uids_is_refused() -> None:
    two = EVENT.replace("UID:ev-1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID", "UID:ev-2\r\n"
                        "DTSTAMP:20260101T000000Z\r\nRECURRENCE-ID")
    with pytest.raises(ParseError, match="one UID"):
        parse_item(two.encode(), "calendars")


def test_with_uid_adds_a_uid_that_full_parsers_accept() -> None:
    bare = parse_item(CARD.replace("UID:abc-1\r\n", "").replace("3.0", "4.0").encode(), "contacts")
    assert bare.uid is None
    fixed = with_uid(bare, "new-uid")
    assert fixed.uid == "new-uid"
    card = vobject.readOne(fixed.text)
    assert card.uid.value == "new-uid"
    assert fixed.text.splitlines()[1] == "VERSION:4.0"  # vCard 4.0: VERSION right after BEGIN


def test_with_note_on_event_keeps_it_valid_icalendar() -> None:
    item = with_note(with_uid(parse_item(EVENT.encode(), "calendars"), "copy-1"), "why, really")
    cal = icalendar.Calendar.from_ical(item.text)
    events = [c for c in cal.walk("VEVENT")]
    assert {str(e["UID"]) for e in events} == {"copy-1"}
    assert all("why, really" in str(e["DESCRIPTION"]) for e in events)


def test_fold_never_splits_utf8_and_respects_75_octets() -> None:
    line = "NOTE:" + "Łódź " * 40
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line


def test_hash_ignores_server_regenerated_timezones_and_default_calscale() -> None:
    tz = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
          "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
    other_tz = tz.replace("19701025T030000", "20001029T040000")
    a = EVENT.replace("PRODID:-//x//y//EN\r\n", "PRODID:-//x//y//EN\r\nCALSCALE:GREGORIAN\r\n" + tz)
    b = EVENT.replace("PRODID:-//x//y//EN\r\n", "PRODID:-//x//y//EN\r\n" + other_tz)
    c = EVENT.replace("PRODID:-//x//y//EN\r\n", "PRODID:-//x//y//EN\r\n" +
                      tz.replace("Europe/Berlin", "Asia/Tokyo"))
    ha, hb, hc = (parse_item(x.encode(), "calendars").hash for x in (a, b, c))
    assert ha == hb
    assert ha != hc
