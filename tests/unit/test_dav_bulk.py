"""Bulk-create bodies and mapping UIDs to where they landed."""

from __future__ import annotations

import pytest

from davsync.dav.api import Created, DavError
from davsync.dav.bulkbody import calendar_body, split_calendar, vcard_body
from davsync.dav.bulkmap import map_bulk, read_uid

TZ = (
    "BEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\n"
    "END:STANDARD\nEND:VTIMEZONE\n"
)


def cal(*components: str, tz: bool = True) -> bytes:
    return ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n" + (TZ if tz else "")
            + "".join(components) + "END:VCALENDAR\n").encode()


def test_vcard_body_concatenates_with_crlf() -> None:
    body = vcard_body([("a", b"BEGIN:VCARD\nUID:a\nEND:VCARD\n"),
                       ("b", b"BEGIN:VCARD\r\nUID:b\r\nEND:VCARD")])
    assert body == b"BEGIN:VCARD\r\nUID:a\r\nEND:VCARD\r\nBEGIN:VCARD\r\nUID:b\r\nEND:VCARD\r\n"
    with pytest.raises(DavError, match=r"'c'.*not a vCard"):
        vcard_body([("c", b"BEGIN:VCALENDAR\n")])


def test_calendar_body_dedups_timezones_and_keeps_every_component() -> None:
    event = "BEGIN:VEVENT\nUID:e\nDTSTART;TZID=Europe/Berlin:20240101T100000\nEND:VEVENT\n"
    override = ("BEGIN:VEVENT\nUID:e\nRECURRENCE-ID;TZID=Europe/Berlin:20240102T100000\n"
                "BEGIN:VALARM\nACTION:DISPLAY\nEND:VALARM\nEND:VEVENT\n")
    todo = "BEGIN:VTODO\nUID:t\n DESCRIPTION folded\nEND:VTODO\n"
    body = calendar_body([("e", cal(event, override)), ("t", cal(todo))], "Work; home")
    text = body.decode()
    assert text.count("BEGIN:VTIMEZONE") == 1 and text.count("BEGIN:VCALENDAR") == 1
    assert text.count("BEGIN:VEVENT") == 2 and "BEGIN:VALARM" in text and "BEGIN:VTODO" in text
    assert "X-WR-CALNAME:Work\\; home\r\n" in text and text.endswith("END:VCALENDAR\r\n")
    assert "\r\n DESCRIPTION folded\r\n" in text


@pytest.mark.parametrize("data", [b"BEGIN:VCALENDAR\nEND:VCALENDAR\n",
                                  b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n"])
def test_broken_calendars_name_the_item(data: bytes) -> None:
    with pytest.raises(DavError, match="'bad'"):
        split_calendar("bad", data.decode())


def test_map_bulk_predicts_names_and_reports_the_rest() -> None:
    listing = {"/u/c/a.ics": '"1"', "/u/c/b%20c.ics": '"2"', "/u/c/random-name.ics": '"3"'}
    mapping = map_bulk(["b c", "a", "odd"], ".ics", "/u/c/", listing, server_sorts=True)
    assert mapping.created == {"a": Created("/u/c/a.ics", '"1"'),
                               "b c": Created("/u/c/b%20c.ics", '"2"')}
    assert mapping.unmatched_uids == ["odd"]
    assert mapping.unmatched_hrefs == ["/u/c/random-name.ics"]


def test_read_uid_unfolds_and_accepts_parameters() -> None:
    assert read_uid(b"BEGIN:VCARD\r\nUID:abc\r\n def\r\nEND:VCARD\r\n") == "abcdef"
    assert read_uid(b"BEGIN:VCARD\nuid;VALUE=TEXT:x:y\nEND:VCARD\n") == "x:y"
    assert read_uid(b"BEGIN:VCARD\nFN:no uid\nEND:VCARD\n") is None
