"""A first pairing on Radicale: one sync-collection that carries every item's data, parsed as it
streams (issue 13), against the listing + multiget path it replaces, which stays the fallback."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest

from tests.fixtures.proxy import (
    Drop,
    Handler,
    LoopbackProxy,
    Reply,
    Request,
    Upstream,
    flood,
    passthrough,
)
from tests.fixtures.radicale import DavAccount
from tests.integration.test_dav_hostile import MEASURED_RUN, behind, no_traceback, run
from tests.integration.test_sync_radicale import ROOT, Device
from tests.integration.test_sync_safety import card, delete, event, proxied, put, write_cards

ITEMS = 120  # over two multiget batches of 50


def with_data(request: Request) -> bool:
    """A request for every item's data in one answer: Radicale's first pairing (a query after
    the sync-token) or a sync-collection asking for the data; not a multiget."""
    return (request.method == "REPORT" and b"address-data" in request.body
            and b"multiget" not in request.body)


def multigets(proxy: LoopbackProxy) -> int:
    return sum(1 for r in proxy.seen if r.method == "REPORT" and b"multiget" in r.body)


def refuse_data(request: Request, upstream: Upstream) -> Reply | Drop:
    return Reply(403, {}, b"no") if with_data(request) else upstream()


def seeded(tmp_path: Path, account: DavAccount) -> Device:
    laptop = Device(tmp_path / "laptop", account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(ITEMS)})
    assert laptop.sync()["exit"] == 0
    return laptop


def state_rows(device: Device) -> list[tuple[object, ...]]:
    """The synced items as recorded (uid, file, href, etag, hash): what the next run trusts."""
    db = next((device.root / "state").glob("*.sqlite*"))
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(
            "SELECT uid, filename, href, etag, hash, content FROM items").fetchall())


def pair(proxy: LoopbackProxy, device: Device) -> dict:  # type: ignore[type-arg]
    """The device's first run, through `proxy` (where it stays: the state keeps its URLs)."""
    proxied(device, proxy)
    got = device.sync()
    assert got["exit"] == 0, got
    return got


_LASTMOD = re.compile(rb"getlastmodified>([^<]+)</")
# A first pairing checks its query against getlastmodified where that is settled when the
# collection is first read (`PairingStart`), else against the sync-token: the two ways.
WAYS = ("by-modified", "by-token")


def dated(way: str, then: Handler = passthrough) -> Handler:
    """`then`, with the answer to the collection's first PROPFIND (the one asking
    resourcetype and getlastmodified) dated so that its getlastmodified is a day old
    ("by-modified": settled) or not old at all ("by-token"), whatever the round trip: which
    way a pairing takes does not depend on the machine's speed. "by-modified" waits first
    until the seeding's last change is two seconds old, so the getlastmodified really is
    settled (a later change lands in a later second): the check it makes stays a real one."""
    if way == "by-modified":
        time.sleep(2.1)
    def handler(request: Request, upstream: Upstream) -> Reply | Drop:
        reply = then(request, upstream)
        found = None
        if (isinstance(reply, Reply) and isinstance(reply.body, bytes)
                and request.method == "PROPFIND" and b"resourcetype" in request.body):
            found = _LASTMOD.search(reply.body)
        if found is not None:
            modified = parsedate_to_datetime(found.group(1).decode())
            age = timedelta(days=1) if way == "by-modified" else timedelta(0)
            reply.headers = {k: v for k, v in reply.headers.items() if k.lower() != "date"}
            reply.headers["Date"] = format_datetime(modified + age, usegmt=True)
        return reply
    return handler


def test_a_first_pairing_downloads_everything_in_one_request_same_as_the_old_path(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = seeded(tmp_path, dav_account)
    phone, old = Device(tmp_path / "phone", dav_account), Device(tmp_path / "old", dav_account)
    with LoopbackProxy(dav_account.url) as proxy, LoopbackProxy(dav_account.url, refuse_data) as op:
        pair(proxy, phone)
        pair(op, old)
        assert sum(1 for r in proxy.seen if with_data(r)) == 1
        assert multigets(proxy) == 0
        assert multigets(op) == 3  # 1 + N/50 on the old path
        assert mark_then_query(proxy.seen, b"addressbook-query")
        assert phone.uids() == laptop.uids() == old.uids()
        assert sorted(p.name for p in phone.contacts.iterdir()) == sorted(
            p.name for p in old.contacts.iterdir())
        assert state_rows(phone) == state_rows(old)
        assert phone.sync()["http_requests"] == 2  # 2 probes: the pairing read the getctag
        assert old.sync()["collections"]["contacts"]["downloaded"] == 0  # the old path did not
        assert phone.sync()["http_requests"] == old.sync()["http_requests"] == 2


def mark_then_query(seen: list[Request], query: bytes) -> bool:
    """Radicale's first pairing: a mark (PROPFIND Depth 0 for the sync-token or
    getlastmodified, no getctag), then one query for every item's data, and no
    sync-collection listing at all."""
    kinds = [("mark" if r.method == "PROPFIND" and b"getctag" not in r.body
              and (b"sync-token" in r.body or b"getlastmodified" in r.body) else
              "query" if r.method == "REPORT" and query in r.body else
              "sync" if b"sync-collection" in r.body else "") for r in seen]
    return ("sync" not in kinds and kinds.count("query") == 1
            and "mark" in kinds[:kinds.index("query")])


def is_marker(request: Request) -> bool:
    """The PROPFIND for the sync-token sent beside a first pairing's query: with getctag
    (checked by the token) or getlastmodified (checked by that)."""
    return (request.method == "PROPFIND" and b"sync-token" in request.body
            and b"resourcetype" not in request.body
            and (b"getctag" in request.body or b"getlastmodified" in request.body))


def collection_marks(device: Device) -> tuple[object, ...]:
    db = next((device.root / "state").glob("*.sqlite*"))
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT ctag, sync_token, modified FROM collections "
                           "WHERE name LIKE '%contacts%'").fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("way", WAYS)
def test_a_first_pairing_reads_the_getctag_beside_its_query_not_before_it(
    tmp_path: Path, dav_account: DavAccount, way: str
) -> None:
    """On Radicale getctag and the sync-token each walk every item: the collection's first
    PROPFIND asks neither, only getlastmodified (a stat per item). Settled, that is the mark
    the query is checked against; else the token is asked alone before the query. The token
    goes out once the query's answer started, beside the reading, with getlastmodified
    again (checked by that) or getctag (checked by the token). Nothing changed meanwhile:
    the token and the mark are recorded, so the next run is the probe alone."""
    seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url, dated(way)) as proxy:
        pair(proxy, phone)
        mine = [r for r in proxy.seen if b"/contacts/" in r.path.encode()]
        kinds = [("load" if r.method == "PROPFIND" and b"resourcetype" in r.body else
                  "marker" if is_marker(r) else
                  "token" if r.method == "PROPFIND" and b"sync-token" in r.body else
                  "query" if b"addressbook-query" in r.body else "") for r in mine]
        assert kinds == (["load", "query", "marker"] if way == "by-modified"
                         else ["load", "token", "query", "marker"]), kinds
        load, marker = mine[0], mine[-1]
        assert b"getctag" not in load.body and b"sync-token" not in load.body
        assert b"getlastmodified" in load.body
        assert (b"getlastmodified" in marker.body) == (way == "by-modified")
        assert (b"getctag" in marker.body) == (way == "by-token")
        ctag, token, modified = collection_marks(phone)
        assert token
        assert bool(ctag) == (way == "by-token")
        assert bool(modified) == (way == "by-modified")  # by-token: its load was not settled
        proxy.seen.clear()
        got = phone.sync()
        # A probe per collection, the empty calendar the laptop made too: its first run read
        # its sync-token, so no token request now creates Radicale's cache folder inside it
        # (which would move the getlastmodified checked, and cost the next run a sync).
        assert got["exit"] == 0 and got["http_requests"] == 2, got
        assert [r.method for r in proxy.seen] == ["PROPFIND", "PROPFIND"]


def test_after_a_pairing_checked_by_getlastmodified_an_old_mark_costs_one_sync_then_a_probe(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """Such a pairing records no getctag. Once its getlastmodified mark is an hour old the
    probe asks getctag, finds none to compare with, and syncs once from the token (nothing
    to download); that run records the getctag, and the next is the probe alone again."""
    seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url, dated("by-modified")) as proxy:
        pair(proxy, phone)
        assert collection_marks(phone)[0] is None
        db = next((phone.root / "state").glob("*.sqlite*"))
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE collections SET modified_at = modified_at - 7200")
        proxy.seen.clear()
        got = phone.sync()
        assert got["exit"] == 0 and got["collections"]["contacts"]["downloaded"] == 0, got
        contacts = [r for r in proxy.seen if "/contacts/" in r.path]
        assert b"getctag" in contacts[0].body
        assert [r.method for r in contacts] == ["PROPFIND", "REPORT"], contacts
        assert collection_marks(phone)[0] is not None
        proxy.seen.clear()
        assert phone.sync()["exit"] == 0
        assert [r.method for r in proxy.seen if "/contacts/" in r.path] == ["PROPFIND"]


def test_an_empty_collection_made_by_a_first_run_gets_its_marks_in_that_run(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """The run that makes a collection reads its marks as after any write: an empty new
    calendar has its sync-token and getctag from that run, and the next run is a probe."""
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {"a": "Only Contacts"})
    assert laptop.sync()["exit"] == 0
    db = next((laptop.root / "state").glob("*.sqlite*"))
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT name, sync_token FROM collections").fetchall())
    calendar = [token for name, token in rows.items() if "personal" in name]
    assert calendar and calendar[0], rows
    assert laptop.sync()["http_requests"] == 2


@pytest.mark.parametrize("way", WAYS)
def test_a_change_before_the_getctag_is_read_is_synced_by_the_next_run(
    tmp_path: Path, dav_account: DavAccount, way: str
) -> None:
    """Another client edits an item after the query's answer was built and before the marks
    beside it are read. By token: the token then differs from the pairing's, that getctag is
    not recorded, and the next run syncs from the pairing's token. By getlastmodified: it
    moved, so neither the getctag nor the token read is recorded, and the next run lists the
    whole collection. Either way the next run downloads the edit, and only it."""
    seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)

    def race(request: Request, upstream: Upstream) -> Reply | Drop:
        if is_marker(request):
            put(dav_account, "contacts", "c5.vcf", card("c5", "Person 5 raced"))
        return upstream()

    with LoopbackProxy(dav_account.url, dated(way, race)) as proxy:
        proxied(phone, proxy)
        proc = phone.run("-v", "sync")
        assert proc.returncode == 0, proc.stderr
        told = f"{proxy.url}{dav_account.username}/contacts/: changed while it was first " \
               "downloaded; the next run lists it once"
        assert (told in proc.stderr) == (way == "by-modified"), proc.stderr
        assert "Person 5 raced" not in (phone.contacts / "c5.vcf").read_text(encoding="utf-8")
        ctag, token, modified = collection_marks(phone)
        assert ctag is None
        assert (token is None and modified is None) == (way == "by-modified")
        again = phone.sync()
        assert again["exit"] == 0, again
        assert again["collections"]["contacts"]["downloaded"] == 1
        assert "Person 5 raced" in (phone.contacts / "c5.vcf").read_text(encoding="utf-8")
        assert phone.sync()["http_requests"] == 2


def test_a_first_calendar_pairing_is_one_query_after_the_token(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    for i in range(60):
        (laptop.calendars / f"e{i}.ics").write_text(event(f"e{i}"), encoding="utf-8")
    assert laptop.sync()["exit"] == 0
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url) as proxy:
        pair(proxy, phone)
        assert mark_then_query([r for r in proxy.seen if b"/personal/" in r.path.encode()],
                               b"calendar-query")
        assert sum(1 for r in proxy.seen if b"calendar-multiget" in r.body) == 0
        assert phone.uids("calendars") == laptop.uids("calendars")
        assert len(phone.uids("calendars")) == 60
        assert phone.sync()["http_requests"] == 2


@pytest.mark.parametrize("way", WAYS)
def test_a_change_between_the_mark_and_the_query_is_applied_once(
    tmp_path: Path, dav_account: DavAccount, way: str
) -> None:
    """Another client edits one item and deletes another after davsync took its mark and
    before its query: the query brings the new version. By token: the next run's sync from
    that token lists both changes again, finds them applied, and downloads nothing. By
    getlastmodified: it moved, so no token is recorded, and the next run's full listing
    finds every etag as recorded and downloads nothing either."""
    laptop = seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)

    def race(request: Request, upstream: Upstream) -> Reply | Drop:
        if request.method == "REPORT" and b"addressbook-query" in request.body:
            put(dav_account, "contacts", "c3.vcf", card("c3", "Person 3 raced"))
            delete(dav_account, "contacts/c4.vcf")
        return upstream()

    with LoopbackProxy(dav_account.url, dated(way, race)) as proxy:
        pair(proxy, phone)
        assert "Person 3 raced" in (phone.contacts / "c3.vcf").read_text(encoding="utf-8")
        assert not (phone.contacts / "c4.vcf").exists()
        assert (collection_marks(phone)[1] is None) == (way == "by-modified")
        again = phone.sync()
        assert again["exit"] == 0, again
        assert again["collections"]["contacts"]["downloaded"] == 0
        assert again["collections"]["contacts"]["deleted_local"] == 0
        assert again["collections"]["contacts"]["conflicts"] == 0
    assert laptop.sync()["exit"] == 0
    assert phone.uids() == laptop.uids()
    assert len(phone.uids()) == ITEMS - 1


def test_a_refused_request_falls_back_to_listing_and_multigets_in_the_same_run(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url, refuse_data) as proxy:
        pair(proxy, phone)
        assert sum(1 for r in proxy.seen if with_data(r)) == 1  # tried once
        assert multigets(proxy) == 3
        assert phone.uids() == laptop.uids()
        # the fallback read no getctag: the next run syncs once from the token, then runs
        # with nothing to do are a probe per collection
        again = phone.sync()
        assert again["exit"] == 0 and again["collections"]["contacts"]["downloaded"] == 0
        assert phone.sync()["http_requests"] == 2


def test_a_change_made_after_the_streamed_listing_is_seen_by_the_next_run(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url) as proxy:
        pair(proxy, phone)
        (laptop.contacts / "c7.vcf").write_text(card("c7", "Person 7 edited"), encoding="utf-8")
        assert laptop.sync()["exit"] == 0
        assert phone.sync()["exit"] == 0
        assert phone.uids() == laptop.uids()


def from_token(request: Request) -> bool:
    """A sync-collection with data that starts from a token (not a first pairing)."""
    return with_data(request) and b"radicale.org/ns/sync/" in request.body


def change_on_laptop(laptop: Device) -> None:
    """Another client edits 30 contacts, deletes 5 and adds 3."""
    for i in range(30):
        (laptop.contacts / f"c{i}.vcf").write_text(card(f"c{i}", f"Person {i} v2"),
                                                  encoding="utf-8")
    for i in range(100, 105):
        (laptop.contacts / f"c{i}.vcf").unlink()
    write_cards(laptop, {f"n{i}": f"New {i}" for i in range(3)})
    got = laptop.sync()
    assert got["exit"] == 0 and got["collections"]["contacts"]["deleted_remote"] == 5, got


def test_a_server_side_change_comes_down_in_one_request_same_as_the_old_path(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """Issue 13: an already paired collection asks the sync-collection from its token for the
    changed items' data; deletions come in the same answer. Same files and state as the
    listing + multiget path."""
    laptop = seeded(tmp_path, dav_account)
    phone, old = Device(tmp_path / "phone", dav_account), Device(tmp_path / "old", dav_account)
    with LoopbackProxy(dav_account.url) as proxy, LoopbackProxy(dav_account.url, refuse_data) as op:
        pair(proxy, phone)
        pair(op, old)
        change_on_laptop(laptop)
        time.sleep(2.2)  # both see the change's time settled: the same requests (`dav.probe`)
        proxy.seen.clear()
        op.seen.clear()
        got, old_got = phone.sync(), old.sync()
        assert got["exit"] == old_got["exit"] == 0, (got, old_got)
        assert sum(1 for r in proxy.seen if from_token(r)) == 1
        assert multigets(proxy) == 0
        assert multigets(op) == 1  # the old path: listing, then one multiget of 33
        assert got["collections"]["contacts"]["downloaded"] == 33
        assert got["collections"]["contacts"]["deleted_local"] == 5
        # refused once (sent early, `dav.earlyprobe`: its 403 is read as the client would)
        assert sum(1 for r in op.seen if from_token(r)) == 1
        assert got["http_requests"] == old_got["http_requests"] - 2  # no listing, no multiget
        assert phone.uids() == laptop.uids() == old.uids()
        assert state_rows(phone) == state_rows(old)
        assert phone.sync()["http_requests"] == old.sync()["http_requests"] == 2  # 2 probes


def test_a_sync_token_the_server_no_longer_knows_falls_back_to_a_full_listing(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url) as proxy:
        pair(proxy, phone)
        change_on_laptop(laptop)
        db = next((phone.root / "state").glob("*.sqlite*"))
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE collections SET sync_token = ? WHERE sync_token IS NOT NULL",
                         ("http://radicale.org/ns/sync/" + "0" * 64,))
        proxy.seen.clear()
        got = phone.sync()
        assert got["exit"] == 0, got
        assert sum(1 for r in proxy.seen if from_token(r)) == 1  # refused: 403 valid-sync-token
        assert phone.uids() == laptop.uids()
        assert phone.sync()["http_requests"] == 2


def hostile(body: bytes) -> Callable[[Request, Upstream], Reply | Drop]:
    def hook(request: Request, upstream: Upstream) -> Reply | Drop:
        if with_data(request):
            return Reply(207, {"Content-Type": "application/xml"}, body)
        return upstream()
    return hook


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
          b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
          b'<multistatus xmlns="DAV:"><response><href>&b;</href></response></multistatus>')


def test_an_answer_with_entities_is_refused_and_the_old_path_is_taken(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = seeded(tmp_path, dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url, hostile(LAUGHS)) as proxy:
        proxied(phone, proxy)
        proc = phone.run("-v", "sync")
    assert proc.returncode == 0, proc.stderr
    assert "uses XML DTDs or entities (DTDForbidden); refusing to parse it" in proc.stderr
    assert ": one-request download refused (" in proc.stderr
    assert "); listing, then downloading in batches" in proc.stderr
    assert phone.uids() == laptop.uids()


def test_a_streamed_href_outside_the_collection_is_ignored_and_reported(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    seeded(tmp_path, dav_account)
    home = f"/{dav_account.username}/contacts/"
    body = (f'<?xml version="1.0"?><multistatus xmlns="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:carddav"><response><href>{home}../other/x.vcf'
            f'</href><propstat><prop><getetag>"1"</getetag><C:address-data>'
            f'{card("evil", "Evil")}</C:address-data></prop><status>HTTP/1.1 200 OK</status>'
            f'</propstat></response><response><href>{home}ok.vcf</href><propstat><prop>'
            f'<getetag>"2"</getetag><C:address-data>{card("ok", "Fine")}</C:address-data>'
            f'</prop><status>HTTP/1.1 200 OK</status></propstat></response>'
            f'<sync-token>http://radicale.org/ns/sync/x</sync-token></multistatus>').encode()
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url, hostile(body)) as proxy:
        proxied(phone, proxy)
        proc = phone.run("sync")
    assert "which is not an item of this collection; ignored" in proc.stderr
    assert "evil" not in phone.uids()
    assert "ok" in phone.uids()


# -- a hostile answer to the streamed request --------------------------------------------------

OPEN = (b'<?xml version="1.0"?><multistatus xmlns="DAV:" '
        b'xmlns:C="urn:ietf:params:xml:ns:carddav">')


def streamed(body: Callable[[str], Iterator[bytes]], account: DavAccount
             ) -> Callable[[Request, Upstream], Reply | Drop]:
    def handler(request: Request, upstream: Upstream) -> Reply | Drop:
        if with_data(request):
            return Reply(207, {"Content-Type": "application/xml"}, body(request.path))
        return upstream()
    return handler


def endless(home: str) -> Iterator[bytes]:
    """60 of the seeded items (over one applied chunk of 50), then deleted members for ever
    (each a valid, tiny response)."""
    yield OPEN
    for n in range(60):
        yield (f'<response><href>{home}c{n}.vcf</href><propstat><prop><getetag>"{n}"'
               f'</getetag><C:address-data>{card(f"c{n}", f"Person {n}")}</C:address-data>'
               '</prop><status>HTTP/1.1 200 OK</status></propstat></response>').encode()
    gone = f'<response><href>{home}gone.vcf</href><status>HTTP/1.1 404 Not Found</status>' \
           '</response>'
    while True:
        yield gone.encode() * 200


def oversized(home: str) -> Iterator[bytes]:
    """An item whose data never ends (65 MiB, past the 64 MiB a response may take)."""
    yield OPEN + f"<response><href>{home}big.vcf</href><propstat><prop><C:address-data>".encode()
    yield from flood(65 << 20, b"x" * 65536)


def test_an_endless_streamed_answer_stops_at_the_deadline_keeping_what_was_applied(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy
) -> None:
    laptop = seeded(tmp_path, dav_account)
    hostile_proxy.handler = streamed(endless, dav_account)
    phone = behind(hostile_proxy, tmp_path / "phone", dav_account, request_timeout=3,
                   max_retries=0)
    proc = run(phone)
    no_traceback(proc)
    assert proc.returncode == 3, proc.stderr
    assert "did not finish within 3 s" in json.loads(proc.stdout)["error"]
    assert {f"c{n}" for n in range(50)} <= set(phone.uids())
    hostile_proxy.handler = passthrough  # the next run (state no longer empty) lists again
    again = run(phone)
    assert again.returncode == 0, again.stderr
    assert phone.uids() == laptop.uids()


def test_an_oversized_streamed_item_is_refused_and_the_old_path_is_taken(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy
) -> None:
    laptop = seeded(tmp_path, dav_account)
    hostile_proxy.handler = streamed(oversized, dav_account)
    phone = behind(hostile_proxy, tmp_path / "phone", dav_account)
    proc = phone.run("-v", "sync", "--only", "contacts")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert ("the answer is larger than 64 MiB, the most davsync reads of one item of a sync "
            "listing with data; not read further") in proc.stderr
    assert phone.uids() == laptop.uids()


def test_items_listed_without_their_data_are_fetched_by_multiget(
    tmp_path: Path, dav_account: DavAccount, hostile_proxy: LoopbackProxy
) -> None:
    """Xandikos 0.4, for one, answers address-data in a sync-collection with a 404 propstat."""
    laptop = seeded(tmp_path, dav_account)
    data = re.compile(rb"<([\w]+:)?address-data>.*?</([\w]+:)?address-data>", re.DOTALL)

    def strip_some(request: Request, upstream: Upstream) -> Reply | Drop:
        reply = upstream()
        if with_data(request):
            assert isinstance(reply.body, bytes)
            reply.body = data.sub(b"", reply.body, count=10)
        return reply

    hostile_proxy.handler = strip_some
    phone = behind(hostile_proxy, tmp_path / "phone", dav_account)
    proc = run(phone)
    assert proc.returncode == 0, proc.stderr
    assert phone.uids() == laptop.uids()
    reports = [s for s in hostile_proxy.requests("REPORT") if b"multiget" in s.body]
    assert len(reports) == 1 and reports[0].body.count(b"href>") == 2 * 10


def test_a_streamed_pairing_with_photos_keeps_memory_at_a_few_items(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """300 contacts with 150 KB photos: a 60 MB answer, never held whole (reading it at once,
    parsed, would be several times that)."""
    laptop = Device(tmp_path / "laptop", dav_account)
    photo = "PHOTO;ENCODING=b;TYPE=JPEG:" + base64.b64encode(os.urandom(150_000)).decode()
    folded = "\r\n ".join(photo[i:i + 74] for i in range(0, len(photo), 74)) + "\r\n"
    for n in range(300):
        (laptop.contacts / f"p{n}.vcf").write_text(card(f"p{n}", f"P {n}", folded),
                                                   encoding="utf-8")
    assert laptop.sync("--only", "contacts")["exit"] == 0
    phone = Device(tmp_path / "phone", dav_account)
    with LoopbackProxy(dav_account.url) as proxy:
        proxied(phone, proxy)
        proc = subprocess.run([sys.executable, "-c", MEASURED_RUN, str(phone.config)],
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        assert sum(1 for r in proxy.seen if with_data(r)) == 1 and multigets(proxy) == 0
    out = json.loads(proc.stdout)
    assert out["result"]["collections"]["contacts"]["downloaded"] == 300
    assert out["peak_mib"] < 150, out["peak_mib"]
