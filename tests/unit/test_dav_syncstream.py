"""The incremental, hardened reader of a streamed sync-collection answer (`dav/syncstream.py`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from davsync.dav import syncstream
from davsync.dav.api import DavError
from davsync.dav.bounds import AnswerLimit, AnswerTooLarge
from davsync.dav.multistatus import DavResponse, parse_multistatus, parse_response
from tests.unit.test_dav_multistatus import BILLION_LAUGHS

URL = "http://dav.example/u/contacts/"
ANSWER = (
    b'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" '
    b'xmlns:c="urn:ietf:params:xml:ns:carddav">'
    + b"".join(
        b'<d:response><d:href>/u/contacts/%d.vcf</d:href><d:propstat><d:prop>'
        b'<d:getetag>"e%d"</d:getetag><c:address-data>BEGIN:VCARD\r\nUID:%d\r\n'
        b'END:VCARD\r\n</c:address-data></d:prop><d:status>HTTP/1.1 200 OK</d:status>'
        b'</d:propstat></d:response>' % (n, n, n) for n in range(5))
    + b'<d:response><d:href>/u/contacts/gone.vcf</d:href>'
      b'<d:status>HTTP/1.1 404 Not Found</d:status></d:response>'
      b'<d:sync-token>http://radicale.org/ns/sync/abc</d:sync-token></d:multistatus>'
)


def read(chunks: list[bytes]) -> tuple[list[ET.Element], str | None]:
    seen: list[ET.Element] = []
    reader = syncstream.ResponseReader(URL, seen.append)
    for chunk in chunks:
        reader.feed(chunk)
    return seen, reader.close()


def test_byte_by_byte_gives_what_the_whole_body_parser_gives() -> None:
    seen, token = read([ANSWER[i:i + 1] for i in range(len(ANSWER))])
    whole = parse_multistatus(ANSWER, URL)
    def flat(r: DavResponse) -> tuple[object, ...]:
        return r.href, r.status, sorted((k, v.text) for k, v in r.props.items())
    assert [flat(parse_response(e, URL)) for e in seen] == [flat(r) for r in whole.responses]
    assert token == whole.sync_token == "http://radicale.org/ns/sync/abc"


def test_a_dtd_with_entities_is_refused_before_anything_is_expanded() -> None:
    with pytest.raises(DavError, match=r"uses XML DTDs or entities \(DTDForbidden\)"):
        read([BILLION_LAUGHS])


def test_malformed_xml_and_another_root_are_refused() -> None:
    with pytest.raises(DavError, match="not well-formed XML"):
        read([b"<d:multistatus xmlns:d='DAV:'><d:response>"])
    with pytest.raises(DavError, match="expected a DAV:multistatus answer"):
        read([b"<html/>"])


def test_one_response_over_its_limit_is_refused_counted_per_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(syncstream, "STREAMED_ITEM", AnswerLimit(len(ANSWER) // 4, "one item"))
    seen, _ = read([ANSWER[i:i + 64] for i in range(0, len(ANSWER), 64)])  # each item fits
    assert len(seen) == 6
    big = ANSWER.replace(b"UID:0", b"UID:0\r\nNOTE:" + b"x" * len(ANSWER))
    with pytest.raises(AnswerTooLarge):
        read([big[i:i + 64] for i in range(0, len(big), 64)])


def test_a_flood_of_tiny_elements_is_refused_long_before_the_size_limit() -> None:
    flood = b"<d:multistatus xmlns:d='DAV:'><d:response>" + b"<x>" * 100_000
    with pytest.raises(DavError, match="more than 1000 XML elements"):
        read([flood])
