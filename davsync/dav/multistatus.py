"""Reading WebDAV answers: 207 multistatus bodies and DAV:error bodies.

Parsed with defusedxml (no DTDs, no entity expansion: a billion-laughs body is an error, not a
hang). Anything that is not the XML we expect becomes a DavError naming the URL, so a hostile or
broken server cannot crash a sync with a parser traceback.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

import defusedxml
import defusedxml.ElementTree as SafeET

from davsync.dav.api import DavError
from davsync.dav.hrefs import normalize_href
from davsync.dav.xmlbodies import DAV, SYNC_TOKEN, qname

_HREF = qname(DAV, "href")
_STATUS = qname(DAV, "status")
_RESPONSE = qname(DAV, "response")
_PROPSTAT = qname(DAV, "propstat")
_PROP = qname(DAV, "prop")
_STATUS_LINE = re.compile(r"^\s*HTTP/\d(?:\.\d)?\s+(\d{3})\b")


@dataclass(frozen=True)
class DavResponse:
    """One DAV:response: its normalised href, the response-level status if it has one (404 for
    a deleted or missing member, 507 for a truncated sync), and the properties found (200)."""

    href: str
    status: int | None
    props: Mapping[str, ET.Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A property's text, stripped; None if absent or empty."""
        element = self.props.get(name)
        if element is None or element.text is None:
            return None
        return element.text.strip() or None

    def child_href(self, name: str) -> str | None:
        """The first DAV:href inside a property such as current-user-principal."""
        element = self.props.get(name)
        if element is None:
            return None
        href = element.find(_HREF)
        if href is None or not href.text:
            return None
        return href.text.strip() or None

    def child_tags(self, name: str) -> frozenset[str]:
        """Tags of a property's children, e.g. the types inside DAV:resourcetype."""
        element = self.props.get(name)
        return frozenset() if element is None else frozenset(child.tag for child in element)

    def reports(self) -> frozenset[str]:
        """The REPORT names in a DAV:supported-report-set."""
        element = self.props.get(qname(DAV, "supported-report-set"))
        if element is None:
            return frozenset()
        return frozenset(
            child.tag for report in element.iter(qname(DAV, "report")) for child in report
        )


@dataclass(frozen=True)
class Multistatus:
    responses: tuple[DavResponse, ...]
    sync_token: str | None

    def own(self, path: str) -> DavResponse | None:
        """The response about the requested resource itself (`path`, normalised), or the only
        response there is; None when the answer does not describe it."""
        for response in self.responses:
            if response.href == path:
                return response
        return self.responses[0] if len(self.responses) == 1 else None


def parse_status(text: str | None, url: str) -> int:
    match = _STATUS_LINE.match(text or "")
    if match is None:
        raise DavError(f"{url}: unreadable status line {(text or '')[:60]!r} in the answer")
    return int(match.group(1))


def parse_xml(body: bytes, url: str) -> ET.Element:
    """Parse an XML body safely; every failure is a DavError naming `url`."""
    if not body.strip():
        raise DavError(f"{url}: the server sent an empty answer where XML was expected")
    try:
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise DavError(
            f"{url}: the server's answer uses XML DTDs or entities ({type(exc).__name__}); "
            "refusing to parse it"
        ) from None
    except ET.ParseError as exc:
        raise DavError(f"{url}: the server's answer is not well-formed XML ({exc})") from None
    return root


def parse_response(element: ET.Element, url: str) -> DavResponse:
    """One DAV:response element, its href normalised against `url`."""
    href_element = element.find(_HREF)
    if href_element is None or not (href_element.text or "").strip():
        raise DavError(f"{url}: a multistatus response without an href")
    href = normalize_href(href_element.text or "", url)
    status_element = element.find(_STATUS)
    status = None if status_element is None else parse_status(status_element.text, url)
    props: dict[str, ET.Element] = {}
    for propstat in element.iter(_PROPSTAT):
        if parse_status(propstat.findtext(_STATUS), url) // 100 != 2:
            continue
        prop = propstat.find(_PROP)
        if prop is not None:
            props.update((child.tag, child) for child in prop)
    return DavResponse(href, status, props)


def parse_multistatus(body: bytes, url: str) -> Multistatus:
    """A 207 body as normalised responses plus the sync-token of a sync-collection answer."""
    root = parse_xml(body, url)
    if root.tag != qname(DAV, "multistatus"):
        raise DavError(f"{url}: expected a DAV:multistatus answer, got <{root.tag[:60]}>")
    responses = tuple(parse_response(e, url) for e in root.findall(_RESPONSE))
    token = root.findtext(SYNC_TOKEN)
    return Multistatus(responses, token.strip() if token and token.strip() else None)


def error_conditions(body: bytes) -> frozenset[str]:
    """The precondition elements of a DAV:error body (e.g. DAV:valid-sync-token); empty when the
    body is not such XML, since error bodies are often plain text."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (defusedxml.DefusedXmlException, ET.ParseError):
        return frozenset()
    if root.tag != qname(DAV, "error"):
        return frozenset()
    return frozenset(child.tag for child in root)


@dataclass(frozen=True)
class SyncPage:
    """One sync-collection answer: `truncated` when the collection's own href came back 507."""

    changed: Mapping[str, str | None]
    deleted: frozenset[str]
    token: str
    truncated: bool


def read_sync_page(ms: Multistatus, collection_path: str, url: str) -> SyncPage:
    changed: dict[str, str | None] = {}
    deleted: set[str] = set()
    truncated = False
    for response in ms.responses:
        if response.href == collection_path:
            truncated = truncated or response.status == 507
        elif response.status == 404:
            deleted.add(response.href)
        elif response.status is None or response.status // 100 == 2:
            changed[response.href] = response.text(qname(DAV, "getetag"))
    if ms.sync_token is None:
        raise DavError(f"{url}: the sync-collection answer has no sync-token")
    return SyncPage(changed, frozenset(deleted), ms.sync_token, truncated)


@dataclass
class SyncAccumulator:
    """Merges the pages of a truncated sync: a later page wins for the same href."""

    changed: dict[str, str | None] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def add(self, page: SyncPage) -> None:
        for href, etag in page.changed.items():
            self.deleted.discard(href)
            self.changed[href] = etag
        for href in page.deleted:
            self.changed.pop(href, None)
            self.deleted.add(href)


def member_etags(ms: Multistatus, collection_path: str) -> dict[str, str | None]:
    """Depth-1 PROPFIND answer -> member href: etag, without the collection itself,
    sub-collections, or members the server reports as gone."""
    etags: dict[str, str | None] = {}
    for response in ms.responses:
        if response.href == collection_path or response.status == 404:
            continue
        if qname(DAV, "collection") in response.child_tags(qname(DAV, "resourcetype")):
            continue
        etags[response.href] = response.text(qname(DAV, "getetag"))
    return etags
