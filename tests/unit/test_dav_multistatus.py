"""Parsing multistatus answers: tables of what servers really send, and hostile bodies."""

from __future__ import annotations

import pytest

from davsync.dav.api import DavError
from davsync.dav.multistatus import (
    SyncAccumulator,
    SyncPage,
    error_conditions,
    member_etags,
    parse_multistatus,
    read_sync_page,
)
from davsync.dav.xmlbodies import GETCTAG, GETETAG, RESOURCETYPE, SYNC_TOKEN, VALID_SYNC_TOKEN

URL = "http://127.0.0.1:5232/u/ab/"

SYNC_507 = b"""<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:">
  <d:response><d:href>/u/ab/a.vcf</d:href>
    <d:propstat><d:prop><d:getetag>"e1"</d:getetag></d:prop>
      <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
  <d:response><d:href>http://127.0.0.1:5232/u/ab/gone%20one.vcf</d:href>
    <d:status>HTTP/1.1 404 Not Found</d:status></d:response>
  <d:response><d:href>/u/ab/</d:href>
    <d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>
  <d:sync-token>tok-2</d:sync-token>
</d:multistatus>"""

PROPSTATS = b"""<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:X="http://calendarserver.org/ns/"
  xmlns:A="urn:ietf:params:xml:ns:carddav">
 <response><href>/u/ab/</href>
  <propstat><prop><X:getctag>"ctag-1"</X:getctag><sync-token>tok</sync-token>
   <resourcetype><collection/><A:addressbook/></resourcetype></prop>
   <status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><getetag/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
 </response>
 <response><href>/u/ab/b.vcf</href>
  <propstat><prop><getetag>"e2"</getetag><resourcetype/></prop>
   <status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/u/ab/sub/</href>
  <propstat><prop><getetag>"s"</getetag><resourcetype><collection/></resourcetype></prop>
   <status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/u/ab/noetag.vcf</href>
  <propstat><prop><getetag/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
 </response>
</multistatus>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<multistatus xmlns="DAV:"><response><href>&lol9;</href></response></multistatus>"""


def test_sync_page_with_507_404_and_absolute_hrefs() -> None:
    page = read_sync_page(parse_multistatus(SYNC_507, URL), "/u/ab/", URL)
    assert page == SyncPage({"/u/ab/a.vcf": '"e1"'}, frozenset({"/u/ab/gone%20one.vcf"}),
                            "tok-2", truncated=True)


def test_sync_page_without_token_is_an_error() -> None:
    body = SYNC_507.replace(b"<d:sync-token>tok-2</d:sync-token>", b"")
    with pytest.raises(DavError, match="no sync-token"):
        read_sync_page(parse_multistatus(body, URL), "/u/ab/", URL)


def test_propstats_only_keep_found_properties_across_prefixes() -> None:
    ms = parse_multistatus(PROPSTATS, URL)
    own = ms.responses[0]
    assert own.text(GETCTAG) == '"ctag-1"' and own.text(SYNC_TOKEN) == "tok"
    assert GETETAG not in own.props
    assert "{urn:ietf:params:xml:ns:carddav}addressbook" in own.child_tags(RESOURCETYPE)
    assert member_etags(ms, "/u/ab/") == {"/u/ab/b.vcf": '"e2"', "/u/ab/noetag.vcf": None}


def test_merging_truncated_pages_later_wins() -> None:
    merged = SyncAccumulator()
    merged.add(SyncPage({"/a": "1", "/b": "1"}, frozenset({"/c"}), "t1", truncated=True))
    merged.add(SyncPage({"/c": "2"}, frozenset({"/a"}), "t2", truncated=False))
    assert merged.changed == {"/b": "1", "/c": "2"} and merged.deleted == {"/a"}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (BILLION_LAUGHS, "DTDs or entities"),
        (b"<multistatus xmlns='DAV:'><response>", "not well-formed"),
        (b"", "empty answer"),
        (b"<html><body>Login</body></html>", "expected a DAV:multistatus"),
        (b"<multistatus xmlns='DAV:'><response><status>HTTP/1.1 200</status></response>"
         b"</multistatus>", "without an href"),
        (b"<multistatus xmlns='DAV:'><response><href>/x</href><status>OK</status></response>"
         b"</multistatus>", "unreadable status"),
        (b"\xff\xfe garbage", "not well-formed"),
    ],
)
def test_hostile_or_garbage_bodies_are_dav_errors_naming_the_url(body: bytes, match: str) -> None:
    with pytest.raises(DavError, match=match) as info:
        parse_multistatus(body, URL)
    assert URL in str(info.value)


def test_error_conditions_read_dav_error_bodies_only() -> None:
    body = b"<?xml version='1.0'?><D:error xmlns:D='DAV:'><D:valid-sync-token/></D:error>"
    assert error_conditions(body) == {VALID_SYNC_TOKEN}
    assert error_conditions(b"Forbidden") == frozenset()
    assert error_conditions(BILLION_LAUGHS) == frozenset()
