"""Request bodies parse back to what the RFCs ask for, whatever the text inside."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from davsync.dav import xmlbodies as xb


def parse(body: bytes) -> ET.Element:
    assert body.startswith(b"<?xml")
    return ET.fromstring(body)  # noqa: S314 - our own output


def test_propfind_lists_the_properties() -> None:
    root = parse(xb.propfind((xb.GETETAG, xb.GETCTAG)))
    assert root.tag == "{DAV:}propfind"
    assert [child.tag for child in root.iterfind("{DAV:}prop/*")] == [xb.GETETAG, xb.GETCTAG]


def test_sync_collection_empty_and_given_token() -> None:
    initial = parse(xb.sync_collection(None))
    assert initial.findtext(xb.SYNC_TOKEN) == ""
    assert initial.findtext("{DAV:}sync-level") == "1"
    later = parse(xb.sync_collection("http://x/sync/<&>"))
    assert later.findtext(xb.SYNC_TOKEN) == "http://x/sync/<&>"


def test_multiget_kinds_and_hrefs() -> None:
    hrefs = ["/u/a%20b.vcf", "/u/<odd>&.vcf"]
    card = parse(xb.multiget("contacts", hrefs))
    assert card.tag == "{urn:ietf:params:xml:ns:carddav}addressbook-multiget"
    assert [h.text for h in card.findall("{DAV:}href")] == hrefs
    assert card.find(f"{{DAV:}}prop/{xb.ADDRESS_DATA}") is not None
    cal = parse(xb.multiget("calendars", hrefs[:1]))
    assert cal.tag == "{urn:ietf:params:xml:ns:caldav}calendar-multiget"
    assert cal.find(f"{{DAV:}}prop/{xb.CALENDAR_DATA}") is not None


def test_mkcol_and_mkcalendar() -> None:
    mkcol = parse(xb.mkcol_addressbook("Friends & Family"))
    prop = mkcol.find("{DAV:}set/{DAV:}prop")
    assert prop is not None and prop.findtext(xb.DISPLAYNAME) == "Friends & Family"
    types = {c.tag for c in prop.iterfind(f"{xb.RESOURCETYPE}/*")}
    assert types == {xb.COLLECTION, xb.ADDRESSBOOK}
    mkcal = parse(xb.mkcalendar(None))
    comps = mkcal.findall(".//{urn:ietf:params:xml:ns:caldav}comp")
    assert [c.get("name") for c in comps] == ["VEVENT", "VTODO"]
    assert mkcal.find(f".//{xb.DISPLAYNAME}") is None


def test_proppatch_displayname() -> None:
    root = parse(xb.proppatch_displayname("Ünïcode"))
    assert root.findtext(f"{{DAV:}}set/{{DAV:}}prop/{xb.DISPLAYNAME}") == "Ünïcode"
