"""Request bodies for WebDAV, CardDAV and CalDAV, built with xml.etree (never by string
formatting, so hrefs and display names can hold any character)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

DAV: Final = "DAV:"
CALDAV: Final = "urn:ietf:params:xml:ns:caldav"
CARDDAV: Final = "urn:ietf:params:xml:ns:carddav"
CALSERVER: Final = "http://calendarserver.org/ns/"
# The Content-Type of every body built here.
XML_CONTENT: Final = {"Content-Type": "application/xml; charset=utf-8"}


def qname(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


GETETAG: Final = qname(DAV, "getetag")
GETCTAG: Final = qname(CALSERVER, "getctag")
SYNC_TOKEN: Final = qname(DAV, "sync-token")
GETLASTMODIFIED: Final = qname(DAV, "getlastmodified")
RESOURCETYPE: Final = qname(DAV, "resourcetype")
DISPLAYNAME: Final = qname(DAV, "displayname")
SUPPORTED_REPORT_SET: Final = qname(DAV, "supported-report-set")
# The change probe: getctag alone (on Radicale every change marker walks all items, so asking for
# getctag and sync-token together pays that walk twice), and which REPORTs the collection offers.
PROBE_PROPS: Final = (GETCTAG, SUPPORTED_REPORT_SET)
# The probe where getlastmodified is the change marker (quirk "modified_marks").
MODIFIED_PROBE_PROPS: Final = (GETLASTMODIFIED,)
CURRENT_USER_PRINCIPAL: Final = qname(DAV, "current-user-principal")
ADDRESSBOOK_HOME_SET: Final = qname(CARDDAV, "addressbook-home-set")
CALENDAR_HOME_SET: Final = qname(CALDAV, "calendar-home-set")
ADDRESS_DATA: Final = qname(CARDDAV, "address-data")
CALENDAR_DATA: Final = qname(CALDAV, "calendar-data")
COLLECTION: Final = qname(DAV, "collection")
ADDRESSBOOK: Final = qname(CARDDAV, "addressbook")
CALENDAR: Final = qname(CALDAV, "calendar")
SYNC_COLLECTION: Final = qname(DAV, "sync-collection")
APPLE_ICAL: Final = "http://apple.com/ns/ical/"
CALENDAR_COLOR: Final = qname(APPLE_ICAL, "calendar-color")
SUPPORTED_COMPONENTS: Final = qname(CALDAV, "supported-calendar-component-set")
VALID_SYNC_TOKEN: Final = qname(DAV, "valid-sync-token")


def _serialize(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _prop(parent: ET.Element, names: Iterable[str]) -> ET.Element:
    prop = ET.SubElement(parent, qname(DAV, "prop"))
    for name in names:
        ET.SubElement(prop, name)
    return prop


def propfind(props: Iterable[str]) -> bytes:
    root = ET.Element(qname(DAV, "propfind"))
    _prop(root, props)
    return _serialize(root)


def sync_collection(token: str | None, props: Iterable[str] = (GETETAG,)) -> bytes:
    """RFC 6578 sync-collection at sync-level 1; no token (or "") asks for the full listing."""
    root = ET.Element(SYNC_COLLECTION)
    ET.SubElement(root, SYNC_TOKEN).text = token or ""
    ET.SubElement(root, qname(DAV, "sync-level")).text = "1"
    _prop(root, props)
    return _serialize(root)


def sync_with_data(token: str | None, kind: str) -> bytes:
    """The sync-collection from `token` that asks for each changed item's etag and data."""
    return sync_collection(token, (GETETAG, data_prop(kind)))


def data_prop(kind: str) -> str:
    """The property that carries an item's data: address-data for an addressbook,
    calendar-data for a calendar."""
    return ADDRESS_DATA if kind == "contacts" else CALENDAR_DATA


def multiget(kind: str, hrefs: Sequence[str]) -> bytes:
    """addressbook-multiget (RFC 6352) or calendar-multiget (RFC 4791) for etag and data."""
    if kind == "contacts":
        root = ET.Element(qname(CARDDAV, "addressbook-multiget"))
    else:
        root = ET.Element(qname(CALDAV, "calendar-multiget"))
    _prop(root, (GETETAG, data_prop(kind)))
    for href in hrefs:
        ET.SubElement(root, qname(DAV, "href")).text = href
    return _serialize(root)


def query_all(kind: str) -> bytes:
    """addressbook-query (RFC 6352) or calendar-query (RFC 4791) matching every item, for
    etag and data: a whole collection's download without naming its hrefs."""
    if kind == "contacts":
        root = ET.Element(qname(CARDDAV, "addressbook-query"))
        _prop(root, (GETETAG, ADDRESS_DATA))
    else:
        root = ET.Element(qname(CALDAV, "calendar-query"))
        _prop(root, (GETETAG, CALENDAR_DATA))
        every = ET.SubElement(root, qname(CALDAV, "filter"))
        ET.SubElement(every, qname(CALDAV, "comp-filter"), {"name": "VCALENDAR"})
    return _serialize(root)


def mkcol_addressbook(displayname: str | None) -> bytes:
    """Extended MKCOL (RFC 5689) creating an addressbook."""
    root = ET.Element(qname(DAV, "mkcol"))
    prop = ET.SubElement(ET.SubElement(root, qname(DAV, "set")), qname(DAV, "prop"))
    resourcetype = ET.SubElement(prop, RESOURCETYPE)
    ET.SubElement(resourcetype, COLLECTION)
    ET.SubElement(resourcetype, ADDRESSBOOK)
    if displayname:
        ET.SubElement(prop, DISPLAYNAME).text = displayname
    return _serialize(root)


def mkcalendar(displayname: str | None, components: Sequence[str] = ("VEVENT", "VTODO")) -> bytes:
    """MKCALENDAR (RFC 4791) for a calendar holding events and tasks."""
    root = ET.Element(qname(CALDAV, "mkcalendar"))
    prop = ET.SubElement(ET.SubElement(root, qname(DAV, "set")), qname(DAV, "prop"))
    if displayname:
        ET.SubElement(prop, DISPLAYNAME).text = displayname
    comp_set = ET.SubElement(prop, qname(CALDAV, "supported-calendar-component-set"))
    for component in components:
        ET.SubElement(comp_set, qname(CALDAV, "comp"), name=component)
    return _serialize(root)


def proppatch_displayname(displayname: str) -> bytes:
    return proppatch({DISPLAYNAME: displayname})


def proppatch(values: Mapping[str, str]) -> bytes:
    """PROPPATCH setting each property (a qname) to its text."""
    root = ET.Element(qname(DAV, "propertyupdate"))
    prop = ET.SubElement(ET.SubElement(root, qname(DAV, "set")), qname(DAV, "prop"))
    for name, value in values.items():
        ET.SubElement(prop, name).text = value
    return _serialize(root)
