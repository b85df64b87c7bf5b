"""Firefox OS / KaiOS contacts <-> vCard: every field comes back from its vCard unchanged."""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from davsync.core.convert import ConvertError, Unconverted
from davsync.core.convert.mozcontact import (
    KNOWN,
    ContactAddress,
    ContactField,
    MozContact,
    export_records,
    export_to_vcards,
    from_json,
    from_vcard,
    parse_export,
    serialize_export,
    serialize_records,
    to_vcard,
)
from davsync.core.convert.vcard import Version
from davsync.core.item import parse_item
from davsync.core.vtext import ParseError

DATA = Path(__file__).parent.parent / "fixtures" / "data"
EXPORT = (DATA / "kaios_contacts.json").read_bytes()
VERSIONS: list[Version] = ["3.0", "4.0"]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200))).decode()

ONE_FIELD: list[tuple[str, Any]] = [
    ("name", ("Zoë Ångström", "Zoe Angstrom")),
    ("honorificPrefix", ("Dr.", "Prof., em.")),
    ("givenName", ("Zoë; the first",)),
    ("additionalName", ("Marie", "Luise")),
    ("familyName", ("Ång, ström",)),
    ("honorificSuffix", ("PhD",)),
    ("nickname", ("Zo, the great", "Z\\")),
    ("email", (ContactField("zoe@example.org", ("home",), True),
               ContactField("z@firma.example", ("work", "Büro; 2"), False))),
    ("tel", (ContactField("+49 170 1", ("mobile",), True, "Vodafone.de"),
             ContactField("+49 30 2", ("faxHome",)), ContactField("+49 30 3", ("faxOffice",)),
             ContactField("+49 30 4", ("faxOther", "cell")), ContactField("5", ("CELL",)),
             ContactField("6", ("home", "Custom \"quoted\" ^ type")))),
    ("adr", (ContactAddress(("home",), "Hauptstraße 1; HH\n3. OG", "Köln", "NRW", "50667",
                            "Deutschland", True), ContactAddress(locality="Paris"))),
    ("org", ("Acme, Inc.", "Second; Org")),
    ("jobTitle", ("Head of R&D; Berlin",)),
    ("bday", "1985-04-12"),
    ("bday", "1985-04-12T00:00:00.000Z"),
    ("bday", "--04-12"),
    ("note", ("Met at FOSDEM, 2019.\nLikes tea; not coffee. " + "long line " * 20,)),
    ("photo", (PNG, "https://cdn.example.com/p/a,b;c.jpg", "data:text/plain,hi")),
    ("category", ("Family", "KaiOS, imported")),
    ("url", (ContactField("https://zoe.example.org/?a=1,2;b=3", ("homepage",)),)),
    ("impp", (ContactField("xmpp:zoe@jabber.example", ("xmpp",), True),)),
    ("anniversary", "2010-06-19"),
    ("anniversary", "2010-06-19T12:00:00+02:00"),
    ("sex", "female"),
    ("genderIdentity", "non-binary; they/them"),
    ("updated", "2024-11-02T18:40:12.345Z"),
    ("extra", '{"key":["sim:1:17"],"published":"2021-03-04T09:15:00.000Z"}'),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("key", "value"), ONE_FIELD, ids=[f"{k}-{i}" for i, (k, _) in
                                                          enumerate(ONE_FIELD)])
def test_each_field_round_trips(key: str, value: Any, version: Version) -> None:
    contact = replace(MozContact(id="c-1"), **{key: value})
    text = to_vcard(contact, version)
    assert parse_item(text, "contacts").uid == "c-1"
    assert from_vcard(text) == contact


@pytest.mark.parametrize("version", VERSIONS)
def test_the_kaios_export_round_trips_through_vcard(version: Version) -> None:
    contacts = parse_export(EXPORT)
    assert [c.display() for c in contacts] == ["Zoë Ångström", "Rahul Sharma", "Pizzeria Napoli"]
    cards = export_to_vcards(EXPORT, version)
    assert [from_vcard(card) for card in cards] == contacts
    assert json.loads(serialize_export(contacts)) == _without_false_and_empty(json.loads(EXPORT))


def _without_false_and_empty(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The export as serialize_export writes it: `pref` always present, empty values left out."""
    for record in records:
        for key in ("email", "tel", "url", "impp", "adr"):
            for entry in record.get(key, []):
                entry.setdefault("pref", False)
                entry.setdefault("type", [])
    return records


def test_vcard_3_carries_photos_inline_and_4_as_data_uri() -> None:
    contact = MozContact(id="p", photo=(PNG, "https://x.example/a.jpg"))
    three, four = to_vcard(contact, "3.0"), to_vcard(contact, "4.0")
    assert "PHOTO;ENCODING=b;TYPE=PNG:" in three
    assert "PHOTO;VALUE=uri:https://x.example/a.jpg" in three
    assert "PHOTO:data:image/png;base64," in four
    assert "VERSION:4.0" in four


def test_kaios_fields_land_in_the_vcard_properties_other_clients_read() -> None:
    text = export_to_vcards(EXPORT)[0]
    for line in ["FN:Zoë Ångström", "N:Ångström;Zoë;Marie,Luise;Dr.;PhD",
                 "TEL;TYPE=cell,pref;X-MOZ-CARRIER=Vodafone.de:+49 170 1234567",
                 "TEL;TYPE=fax,work:+49 30 1234-99", "ORG:Acme\\, Inc.", "BDAY:1985-04-12",
                 "X-ANNIVERSARY:2010-06-19", "CATEGORIES:Family,KaiOS\\, imported",
                 "EMAIL;TYPE=home,pref:zoe@example.org"]:
        assert line in text.replace("\r\n ", "")


def test_an_edit_on_the_server_wins_over_the_exact_original() -> None:
    text = to_vcard(MozContact(id="b", bday="1985-04-12T00:00:00.000Z"))
    edited = text.replace("\nBDAY:1985-04-12\r", "\nBDAY:1986-05-13\r")
    assert from_vcard(edited).bday == "1986-05-13"
    renamed = to_vcard(MozContact(id="n", givenName=("Ann",))).replace("FN:Ann", "FN:Annie")
    assert from_vcard(renamed).name == ("Annie",)


def test_a_vcard_from_another_client_is_read_whole() -> None:
    text = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nFN:A\r\nNICKNAME:a,b\r\n"
            "PHOTO:data:image/jpeg;base64,/9j/AA==\r\nEMAIL;PREF=1;TYPE=\"home,work\":a@b\r\n"
            "item1.TEL;TYPE=CELL:1\r\nANNIVERSARY:20100619\r\nORG:Acme;Sales\r\nEND:VCARD\r\n")
    contact = from_vcard(text)
    assert contact.nickname == ("a,b",)
    assert contact.photo == ("data:image/jpeg;base64,/9j/AA==",)
    assert contact.email == (ContactField("a@b", ("home,work",), True),)
    assert contact.tel == (ContactField("1", ("mobile",)),)
    assert contact.anniversary == "2010-06-19"
    assert contact.org == ("Acme",)


def test_records_without_id_get_stable_distinct_uids() -> None:
    export = json.dumps([{"givenName": ["Ann"]}, {"givenName": ["Ann"]}, {"givenName": ["Bo"]}])
    uids = [parse_item(t, "contacts").uid for t in export_to_vcards(export)]
    assert len(set(uids)) == 3
    assert uids == [parse_item(t, "contacts").uid for t in export_to_vcards(export)]
    edited = json.dumps([{"givenName": ["Ann"], "updated": "2025-01-01"}])
    assert parse_item(export_to_vcards(edited)[0], "contacts").uid == uids[0]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('[{"name": ["Ann"], "tel": [{"value": 5}]}]', r"record 1 \(Ann\): tel 1.value is a int"),
        ('[{}, {"email": "x"}]', "record 2: email is not a list"),
        ('[{}, {}, 3]', "record 3: not a JSON object"),
        ('[{"givenName": [1]}]', "givenName holds a int"),
        ('[{"photo": ["a\\nb"]}]', "photo is not a URI"),
        ('[{"email": [{"value": "a", "pref": "yes"}]}]', "email 1.pref is not true or false"),
    ],
)
def test_a_record_that_cannot_be_converted_is_named(record: str, message: str) -> None:
    with pytest.raises(ConvertError, match=message):
        export_to_vcards(record)


@pytest.mark.parametrize("data", [b"{}", b"\xff\xfe", b"[", b"[" * 100_000, b"null"])
def test_a_file_that_is_no_export_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match="not a JSON contacts export"):
        parse_export(data)


# ---- properties ----

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n"), max_size=30)
WORD = TEXT.filter(lambda s: s != "" and s.lower() != "pref")
WORDS = st.lists(WORD, max_size=3).map(tuple)
TEL_TYPES = st.lists(st.sampled_from(["mobile", "faxHome", "faxOffice", "faxOther", "home",
                                      "work", "cell", "FAX", "Home"]) | WORD,
                     max_size=3, unique=True).map(tuple)
NO_CONTROL = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
PHOTO = st.one_of(
    st.builds(lambda kind, raw: f"data:image/{kind};base64," + base64.b64encode(raw).decode(),
              st.sampled_from(["png", "jpeg", "gif", "svg+xml"]), st.binary(max_size=60)),
    NO_CONTROL.filter(bool),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | TEXT
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
EXTRA = st.dictionaries(TEXT.filter(lambda k: k not in KNOWN), JSON,
                        max_size=3)


def _fields(types: st.SearchStrategy[tuple[str, ...]], carrier: bool = False,
            ) -> st.SearchStrategy[tuple[ContactField, ...]]:
    entry = st.builds(ContactField, TEXT, types, st.booleans(),
                      TEXT if carrier else st.just(""))
    return st.lists(entry, max_size=2).map(tuple)


CONTACTS = st.builds(
    MozContact,
    id=WORD, name=WORDS, honorificPrefix=WORDS, givenName=WORDS, additionalName=WORDS,
    familyName=WORDS, honorificSuffix=WORDS, nickname=WORDS, email=_fields(WORDS),
    tel=_fields(TEL_TYPES, carrier=True),
    adr=st.lists(st.builds(ContactAddress, WORDS, TEXT, TEXT, TEXT, TEXT, TEXT, st.booleans()),
                 max_size=2).map(tuple),
    org=WORDS, jobTitle=WORDS, bday=TEXT, note=WORDS, photo=st.lists(PHOTO, max_size=2).map(tuple),
    category=WORDS, url=_fields(WORDS), impp=_fields(WORDS), anniversary=TEXT, sex=TEXT,
    genderIdentity=TEXT, updated=TEXT,
    extra=EXTRA.map(lambda d: json.dumps(d, sort_keys=True, ensure_ascii=False,
                                         separators=(",", ":")) if d else ""),
)


@settings(max_examples=60, deadline=None)
@given(CONTACTS, st.sampled_from(VERSIONS))
def test_any_contact_round_trips(contact: MozContact, version: Version) -> None:
    assert from_vcard(to_vcard(contact, version)) == contact
    assert parse_export(serialize_export([contact])) == [contact]


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_hostile_json_raises_only_parse_errors(value: object) -> None:
    try:
        for text in export_to_vcards(json.dumps([value, {"x": value}])):
            from_vcard(text)
    except ParseError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["N", "ADR", "TEL;TYPE=", "PHOTO;ENCODING=b",
                                              "X-MOZ-EXTRA", "BDAY", "CATEGORIES", "FN"]))
def test_hostile_vcards_raise_only_parse_errors(value: str, name: str) -> None:
    text = f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u\r\n{name}:{value}\r\nEND:VCARD\r\n"
    with contextlib.suppress(ParseError):
        from_json(json.loads(serialize_export([from_vcard(text)]))[0])


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_hostile_records_are_kept_as_read_and_never_stop_the_others(value: object) -> None:
    good = {"id": "g", "name": ["Good"]}
    records = export_records(json.dumps([good, value, {"x": value}]))
    assert len(records) == 3 and isinstance(records[0], str)
    kept = [r for r in records if isinstance(r, Unconverted)]
    written = json.loads(serialize_records(
        [r if isinstance(r, Unconverted) else from_vcard(r) for r in records]))
    for record, back in zip(records, written, strict=True):
        if isinstance(record, Unconverted):
            assert back == record.raw  # written back exactly as read
    assert all(k.error.record.startswith(("2", "3")) for k in kept)
