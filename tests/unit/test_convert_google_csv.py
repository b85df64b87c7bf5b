"""Google Contacts CSV (both header spellings) <-> vCard: every cell comes back from its vCard."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from davsync.core.convert import ConvertError, Unconverted
from davsync.core.convert.google_csv import (
    FAMILIES,
    SINGLES,
    Row,
    csv_records,
    csv_to_vcards,
    header,
    parse_csv,
    row_to_vcard,
    serialize_csv,
    vcard_to_row,
    vcards_to_csv,
)
from davsync.core.convert.vcard import Version
from davsync.core.item import parse_item
from davsync.core.vtext import ParseError

DATA = Path(__file__).parent.parent / "fixtures" / "data"
CURRENT = (DATA / "google_contacts_current.csv").read_bytes()
OLD = (DATA / "google_contacts_old.csv").read_bytes()
VERSIONS: list[Version] = ["3.0", "4.0"]

ONE_FIELD: list[Row] = [
    {"First Name": "Zoë, M.", "Middle Name": "Marie", "Last Name": "Ång; ström"},
    {"Name Prefix": "Dr.", "Name Suffix": "PhD", "First Name": "Zoë"},
    {"Name": "Zoë Marie Ångström", "First Name": "Zoë"},
    {"Phonetic First Name": "ラフル", "Phonetic Middle Name": "x",
     "Phonetic Last Name": "シャルマ"},
    {"Nickname": "Zo, the great"},
    {"File As": "Ångström, Zoë"},
    {"Organization Name": "Acme, Inc.", "Organization Title": "Head; R&D"},
    {"Organization Department": "Research"},
    {"Birthday": "1985-04-12"}, {"Birthday": "--04-12"}, {"Birthday": "April 12"},
    {"Notes": "Met at FOSDEM, 2019.\nLikes tea; not coffee. " + "long " * 30},
    {"Photo": "https://lh3.googleusercontent.com/contacts/AbC123"},
    {"Labels": "* myContacts ::: Family, friends"},
    {"E-mail 1 - Label": "* Home", "E-mail 1 - Value": "a@x ::: b@x",
     "E-mail 2 - Label": "Work", "E-mail 2 - Value": "c@x"},
    {"E-mail 1 - Value": "unlabelled@x"},
    {"Phone 1 - Label": "Mobile", "Phone 1 - Value": "+49 170 1", "Phone 2 - Label": "Home Fax",
     "Phone 2 - Value": "2", "Phone 3 - Label": "Work Mobile", "Phone 3 - Value": "3",
     "Phone 4 - Label": "cell", "Phone 4 - Value": "4", "Phone 5 - Label": "Pager",
     "Phone 5 - Value": "5"},
    {"Address 1 - Label": "Home", "Address 1 - Formatted": "Hauptstraße 1\n50667 Köln",
     "Address 1 - Street": "Hauptstraße 1, HH", "Address 1 - City": "Köln",
     "Address 1 - PO Box": "12", "Address 1 - Region": "NRW", "Address 1 - Postal Code": "50667",
     "Address 1 - Country": "Deutschland", "Address 1 - Extended Address": "3. OG"},
    {"Address 1 - Street": "a ::: b", "Address 1 - City": "X ::: Y"},
    {"Address 1 - Street": "a ::: b", "Address 1 - City": "only one"},  # cannot be paired
    {"Address 1 - Label": "Work", "Address 1 - Formatted": "just formatted"},
    {"Website 1 - Label": "Profile", "Website 1 - Value": "https://z.example/?a=1,2;b"},
    {"Relation 1 - Label": "Spouse", "Relation 1 - Value": "Ana"},
    {"Event 1 - Label": "Anniversary", "Event 1 - Value": "2010-06-19"},
    {"IM 1 - Label": "Home", "IM 1 - Service": "Jabber", "IM 1 - Value": "z@jabber.example"},
    {"Custom Field 1 - Label": "Locker", "Custom Field 1 - Value": "17"},
    {"Gender": "female", "Some \"odd\" column; x": "kept"},
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("row", ONE_FIELD, ids=[next(iter(r)) for r in ONE_FIELD])
def test_each_column_round_trips(row: Row, version: Version) -> None:
    text = row_to_vcard(row, version)
    assert vcard_to_row(text) == (row, parse_item(text, "contacts").uid)


@pytest.mark.parametrize("data", [CURRENT, OLD], ids=["current", "old"])
def test_both_spellings_round_trip_through_vcard(data: bytes) -> None:
    rows = parse_csv(data)
    assert [vcard_to_row(card)[0] for card in csv_to_vcards(data)] == rows
    assert parse_csv(vcards_to_csv(csv_to_vcards(data))) == rows


def test_the_old_spelling_reads_as_the_current_one() -> None:
    current, old = parse_csv(CURRENT), parse_csv(OLD)
    extra_old = {"Name", "Gender"}
    extra_current = {"Relation 1 - Label", "Relation 1 - Value", "Custom Field 1 - Label",
                     "Custom Field 1 - Value"}
    assert {k: v for k, v in old[0].items() if k not in extra_old} == \
        {k: v for k, v in current[0].items() if k not in extra_current}
    assert header("E-mail 3 - Type") == "E-mail 3 - Label"
    assert header("Group Membership") == "Labels"


def test_written_csv_uses_the_current_spelling_in_a_stable_order() -> None:
    written = serialize_csv(parse_csv(OLD))
    columns = written.splitlines()[0].split(",")
    assert "Given Name" not in columns and "E-mail 1 - Type" not in columns
    assert columns[:4] == ["Name", "First Name", "Middle Name", "Last Name"]
    assert columns.index("E-mail 2 - Value") < columns.index("Phone 1 - Label")
    assert "Yomi Name" not in columns  # families and columns not in use are left out
    assert serialize_csv(reversed(parse_csv(OLD))).splitlines()[0] == written.splitlines()[0]


def test_cards_land_in_the_properties_other_clients_read() -> None:
    text = csv_to_vcards(CURRENT)[0].replace("\r\n ", "")
    for line in ["N:Ångström;Zoë;Marie;Dr.;PhD", "EMAIL;TYPE=home,pref:zoe@example.org",
                 "TEL;TYPE=cell:+49 170 1234567", "TEL;TYPE=work,fax:+49 30 1234-99",
                 "ORG:Acme\\, Inc.;Research", "BDAY:1985-04-12", "TITLE:Head of R&D\\; Berlin",
                 "CATEGORIES:* myContacts,Family", "FN:Dr. Zoë Marie Ångström PhD"]:
        assert line in text


def test_uids_are_stable_distinct_and_kept_when_not_derivable() -> None:
    data = "First Name,Notes\r\nAnn,x\r\nAnn,x\r\nBo,\r\n"
    uids = [parse_item(t, "contacts").uid for t in csv_to_vcards(data)]
    assert len(set(uids)) == 3
    assert uids == [parse_item(t, "contacts").uid for t in csv_to_vcards(data)]
    edited = "First Name,Notes\r\nAnn,an edited note\r\n"
    assert parse_item(csv_to_vcards(edited)[0], "contacts").uid == uids[0]
    server = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:server-made-1\r\nFN:Cy\r\nN:;Cy;;;\r\n"
              "END:VCARD\r\n")
    written = vcards_to_csv([*csv_to_vcards(data), server])
    assert "server-made-1" in written and uids[0] not in written
    assert [parse_item(t, "contacts").uid for t in csv_to_vcards(written)] == \
        [*uids, "server-made-1"]


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00", b"a,\"b\nc"])
def test_a_file_that_is_no_csv_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match="not a Google Contacts CSV"):
        csv_to_vcards(data)


# ---- properties ----

CELL = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n"),
               min_size=1, max_size=20).filter(lambda s: ":::" not in s)
LABEL = st.sampled_from(["* Home", "Home", "Work", "Mobile", "Other", "Home Fax", "Pager",
                         "* Work Mobile", "*", "* "]) | CELL
OTHER = st.sampled_from([*SINGLES[:-1], "Gender", *(f"{family} {n} - {sub}" for family in
                         ("Relation", "Event", "IM", "Custom Field") for n in (1, 2)
                         for sub in FAMILIES[family])])


@st.composite
def rows(draw: st.DrawFn) -> Row:
    """A row as Google writes it: single columns, and per family numbered slots with distinct
    labels (two slots with one label are one slot to Google; see docs/conversion.md)."""
    row: Row = draw(st.dictionaries(OTHER, CELL, max_size=6))
    for family in ("E-mail", "Phone", "Website"):
        slots = draw(st.lists(st.tuples(LABEL, CELL), max_size=3, unique_by=lambda s: s[0]))
        for n, (label, value) in enumerate(slots, start=1):
            row[f"{family} {n} - Label"] = label
            row[f"{family} {n} - Value"] = value
    return row


@settings(max_examples=80, deadline=None)
@given(rows().filter(bool), st.sampled_from(VERSIONS))
@example({"Website 1 - Label": "PREF", "Website 1 - Value": "0"}, "3.0")  # not TYPE=pref
@example({"E-mail 1 - Label": "* pref", "E-mail 1 - Value": "a@x"}, "4.0")
@example({"Name": "0", "Photo": "\n"}, "3.0")
def test_any_row_round_trips(row: Row, version: Version) -> None:
    if "\n" in row.get("Photo", ""):  # not a URI: a row that cannot be converted, by design
        with pytest.raises(ConvertError, match="a photo is not a URI"):
            row_to_vcard(row, version)
        return
    text = row_to_vcard(row, version)
    assert vcard_to_row(text)[0] == row
    assert parse_csv(serialize_csv([row])) == [row]


def test_an_empty_address_book_is_a_csv_with_a_header() -> None:
    assert parse_csv(serialize_csv([])) == []


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.text(max_size=15), max_size=5), max_size=4))
def test_hostile_csv_raises_only_parse_errors(cells: list[list[str]]) -> None:
    text = "\r\n".join(",".join(row) for row in [["First Name", "E-mail 1 - Value",
                                                  "Address 1 - Street"], *cells])
    with contextlib.suppress(ParseError):
        for card in csv_to_vcards(text):
            vcard_to_row(card)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.text(max_size=15), max_size=5), max_size=4))
def test_hostile_rows_are_kept_as_read(cells: list[list[str]]) -> None:
    text = "\r\n".join(",".join(row) for row in [["First Name", "Photo", "E-mail 1 - Value"],
                                                  *cells])
    with contextlib.suppress(ParseError):  # only a file that is not CSV at all
        records = csv_records(text)
        again = csv_records(vcards_to_csv(records))
        kept = [r.raw for r in records if isinstance(r, Unconverted)]
        assert [r.raw for r in again if isinstance(r, Unconverted)] == kept
        assert [r.uid for r in again if isinstance(r, Unconverted)] == [
            r.uid for r in records if isinstance(r, Unconverted)]


def test_a_row_that_cannot_be_converted_is_kept_with_its_uid() -> None:
    records = csv_records("First Name,Photo\r\nAnn,\r\nBob,ht\x01tp://x\r\n")
    assert isinstance(records[0], str) and isinstance(records[1], Unconverted)
    assert records[1].raw == {"First Name": "Bob", "Photo": "ht\x01tp://x"}
    assert records[1].uid and records[1].error.record == "2 (Bob)"
