"""The shipped sample vdirs (samples/contacts, samples/calendars) stay valid and cover edge cases.

`make demo` and the docs sync these files, so a broken or unrepresentative sample would hide bugs
instead of showing them: every file must parse with both vobject and icalendar, be RFC-clean on
the wire level (CRLF, folded at 75 octets), and carry exactly one UID that is also its file name.
The benchmark generator (benchmarks/datagen.py) is held to the same rules.
"""

from __future__ import annotations

from pathlib import Path

import icalendar
import pytest
import vobject

SAMPLES = Path(__file__).resolve().parents[2] / "davsync" / "samples"
CONTACTS = sorted((SAMPLES / "contacts").glob("*.vcf"))
CALENDARS = sorted((SAMPLES / "calendars").glob("*.ics"))
ALL = CONTACTS + CALENDARS
ITEM_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _unfolded(path: Path) -> str:
    return _text(path).replace("\r\n ", "").replace("\r\n\t", "")


def test_sample_sets_are_present() -> None:
    assert len(CONTACTS) >= 25
    assert len(CALENDARS) >= 15
    assert not [p for p in (SAMPLES / "contacts").iterdir() if p.suffix != ".vcf"]
    assert not [p for p in (SAMPLES / "calendars").iterdir() if p.suffix != ".ics"]


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_crlf_line_endings(path: Path) -> None:
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n"), "bare LF found"
    assert raw.count(b"\r") == raw.count(b"\r\n"), "bare CR found"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_lines_fold_at_75_octets(path: Path) -> None:
    for number, line in enumerate(path.read_bytes().split(b"\r\n"), start=1):
        assert len(line) <= 75, f"{path.name}:{number} is {len(line)} octets"
        line.decode("utf-8")  # folding must never split a multi-byte character


@pytest.mark.parametrize("path", CONTACTS, ids=_ids(CONTACTS))
def test_contact_parses_with_vobject(path: Path) -> None:
    cards = list(vobject.readComponents(_text(path)))
    assert len(cards) == 1
    card = cards[0]
    assert card.name == "VCARD"
    assert [uid.value for uid in card.contents["uid"]] == [path.stem]
    assert card.fn.value.strip()


@pytest.mark.parametrize("path", CONTACTS, ids=_ids(CONTACTS))
def test_contact_parses_with_icalendar(path: Path) -> None:
    cards = icalendar.Component.from_ical(_text(path), multiple=True)
    assert len(cards) == 1
    card = cards[0]
    assert card.name == "VCARD"
    assert str(card["UID"]) == path.stem
    assert str(card["VERSION"]) in ("3.0", "4.0")


@pytest.mark.parametrize("path", CALENDARS, ids=_ids(CALENDARS))
def test_calendar_parses_with_vobject(path: Path) -> None:
    cals = list(vobject.readComponents(_text(path)))
    assert len(cals) == 1
    cal = cals[0]
    assert cal.name == "VCALENDAR"
    assert cal.version.value == "2.0"
    assert cal.prodid.value
    uids = {c.uid.value for c in cal.getChildren() if c.name in ITEM_COMPONENTS}
    assert uids == {path.stem}


@pytest.mark.parametrize("path", CALENDARS, ids=_ids(CALENDARS))
def test_calendar_parses_with_icalendar(path: Path) -> None:
    cal = icalendar.Calendar.from_ical(_text(path))
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["PRODID"])
    items = [c for c in cal.walk() if c.name in ITEM_COMPONENTS]
    assert items
    assert {str(c["UID"]) for c in items} == {path.stem}
    assert all("DTSTAMP" in c for c in items)


@pytest.mark.parametrize("path", CALENDARS, ids=_ids(CALENDARS))
def test_every_tzid_has_its_vtimezone(path: Path) -> None:
    cal = icalendar.Calendar.from_ical(_text(path))
    defined = {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")}
    used = {
        str(prop.params["TZID"])
        for comp in cal.walk()
        if comp.name in ITEM_COMPONENTS
        for values in comp.values()
        for prop in (values if isinstance(values, list) else [values])
        if hasattr(prop, "params") and "TZID" in prop.params
    }
    assert used <= defined
    assert defined <= used, "unused VTIMEZONE"


def test_contacts_cover_both_versions_and_tricky_fields() -> None:
    texts = [_unfolded(p) for p in CONTACTS]
    versions = [t.split("VERSION:", 1)[1][:3] for t in texts]
    assert versions.count("3.0") >= 10
    assert versions.count("4.0") >= 10
    assert sum("\r\nPHOTO" in t for t in texts) >= 1
    assert sum("\r\nCATEGORIES:" in t for t in texts) >= 1
    assert sum("\r\nBDAY:" in t for t in texts) >= 5
    assert sum("\r\nORG:" in t for t in texts) >= 10
    assert any(t.count("\r\nTEL") >= 3 for t in texts)
    assert any(t.count("\r\nEMAIL") >= 2 for t in texts)
    assert sum(len(p.read_bytes().split(b"\r\n ")) > 1 for p in CONTACTS) >= 2, "no folded line"
    names = {str(vobject.readOne(t).fn.value) for t in texts}
    for name in ("Zoë Ångström", "José Núñez", "Łukasz Żółć", "Хельга Иванова", "山田 太郎",
                 "Ольга", "Siobhán O'Brien"):
        assert name in names


def test_note_escapes_round_trip() -> None:
    notes = [
        vobject.readOne(_text(p)).note.value
        for p in CONTACTS
        if "\r\nNOTE:" in _unfolded(p)
    ]
    assert any("," in n and ";" in n and "\n" in n for n in notes)
    assert "Prefers e-mail; calls only after 10:00, please.\nLikes: coffee" in "\n".join(notes)


def test_calendars_cover_recurrence_todos_alarms_and_all_day() -> None:
    cals = [icalendar.Calendar.from_ical(_text(p)) for p in CALENDARS]
    events = [e for c in cals for e in c.walk("VEVENT")]
    todos = [t for c in cals for t in c.walk("VTODO")]
    assert sum("RRULE" in e and "EXDATE" in e for e in events) >= 1
    assert any(
        any("RRULE" in e for e in c.walk("VEVENT"))
        and any("RECURRENCE-ID" in e for e in c.walk("VEVENT"))
        for c in cals
    ), "no master + RECURRENCE-ID override in one file"
    assert sum(e.get("DTSTART").params.get("VALUE") == "DATE" for e in events) >= 3
    assert any("DUE" in t and t.get("STATUS") == "NEEDS-ACTION" for t in todos)
    assert any(t.get("STATUS") == "COMPLETED" and "COMPLETED" in t for t in todos)
    assert sum(bool(c.walk("VALARM")) for c in cals) >= 3
    tzids = {str(tz["TZID"]) for c in cals for tz in c.walk("VTIMEZONE")}
    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo"} <= tzids
    summaries = " ".join(str(e.get("SUMMARY")) + str(e.get("LOCATION", "")) for e in events)
    assert "東京" in summaries
    assert "Ольг" in summaries


# The benchmark generator (benchmarks/datagen.py) makes the large sample sets: same wire rules.


def test_generated_contacts_are_wire_clean_and_parse() -> None:
    from benchmarks import datagen

    items = list(datagen.contacts(300, seed=3))
    assert len({uid for uid, _ in items}) == 300
    for uid, data in items:
        assert data.endswith(b"\r\n")
        assert data.count(b"\n") == data.count(b"\r\n")
        assert all(len(line) <= 75 for line in data.split(b"\r\n"))
        text = data.decode("utf-8")
        assert vobject.readOne(text).uid.value == uid
        assert str(icalendar.Component.from_ical(text)["UID"]) == uid


def test_generated_events_are_wire_clean_and_parse() -> None:
    from benchmarks import datagen

    for uid, data in datagen.events(200, seed=3):
        assert all(len(line) <= 75 for line in data.split(b"\r\n"))
        cal = icalendar.Calendar.from_ical(data.decode("utf-8"))
        assert {str(e["UID"]) for e in cal.walk("VEVENT")} == {uid}
        assert vobject.readOne(data.decode("utf-8")).vevent.uid.value == uid


def test_generator_is_deterministic_and_edits_keep_the_uid() -> None:
    from benchmarks import datagen

    assert list(datagen.contacts(20, seed=5)) == list(datagen.contacts(20, seed=5))
    assert list(datagen.contacts(5, seed=5)) != list(datagen.contacts(5, seed=6))
    uid, original = datagen.contact(7, seed=5)
    edited_uid, edited = datagen.contact(7, seed=5, revision=1)
    assert edited_uid == uid
    assert edited != original
    assert b"revision 1" in edited


def test_fold_never_splits_a_character() -> None:
    from benchmarks import datagen

    line = "NOTE:" + "山田太郎Zoë Ångström " * 20
    folded = datagen.fold(line).encode("utf-8")
    assert all(len(part) <= 75 for part in folded.split(b"\r\n"))
    assert folded.decode("utf-8").replace("\r\n ", "").rstrip("\r\n") == line
