"""DavClient against a real Radicale: discovery, conditional writes, sync, multiget, bulk."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from davsync.dav import xmlbodies as xb
from davsync.dav.api import (
    DavAuthError,
    DavError,
    InvalidSyncToken,
    PreconditionFailed,
    RequestCounter,
)
from davsync.dav.basic_auth import BasicAuthenticator
from davsync.dav.client import DavClient
from davsync.dav.collection import Collection
from davsync.dav.discovery import find_collection, open_collection
from davsync.dav.multistatus import parse_multistatus
from davsync.errors import ServerSettingError
from davsync.secret import Secret
from tests.fixtures.radicale import DavAccount


def vcard(uid: str, name: str = "Someone") -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"
    ).encode()


TZ = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
    "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\n"
    "TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "END:VTIMEZONE\r\n"
)


def vevent(uid: str, day: int = 1, tz: bool = False) -> bytes:
    """An event in UTC, or in Europe/Berlin with its VTIMEZONE (Radicale's vobject makes
    TZID events slow to store, ~0.1 s each, so most tests use UTC)."""
    start = f"DTSTART;TZID=Europe/Berlin:202401{day:02d}T100000" if tz else (
        f"DTSTART:202401{day:02d}T090000Z")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + (TZ if tz else "")
        + f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n{start}\r\n"
        f"DURATION:PT1H\r\nSUMMARY:Event {uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


RECURRING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + TZ
    + "BEGIN:VEVENT\r\nUID:weekly-standup\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20240101T090000\r\nDURATION:PT15M\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:weekly-standup\r\nDTSTAMP:20240101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20240108T090000\r\n"
    "DTSTART;TZID=Europe/Berlin:20240108T110000\r\nDURATION:PT15M\r\n"
    "SUMMARY:Standup (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
).encode()

TODO = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
    b"UID:todo/with slash\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Buy milk\r\nEND:VTODO\r\n"
    b"END:VCALENDAR\r\n"
)


def make_client(account: DavAccount, url: str | None = None, password: str | None = None,
                counter: RequestCounter | None = None) -> DavClient:
    auth = BasicAuthenticator(account.username, Secret(password or account.password))
    return DavClient(url or account.url, auth, counter=counter, sleep=lambda _: None,
                     multiget_batch=7)


@pytest.fixture
def client(dav_account: DavAccount) -> Iterator[DavClient]:
    with make_client(dav_account) as dav:
        yield dav


@pytest.fixture
def contacts(client: DavClient) -> Collection:
    collection = find_collection(client, "contacts", "contacts", displayname="Contacts")
    collection.ensure_exists()
    return collection


@pytest.fixture
def calendar(client: DavClient) -> Collection:
    collection = find_collection(client, "calendars", "calendar", displayname="Calendar")
    collection.ensure_exists()
    return collection


def resource_props(client: DavClient, collection: Collection) -> dict[str, object]:
    response = client.request(
        "PROPFIND", collection.url, headers={"Depth": "0"},
        content=xb.propfind((xb.RESOURCETYPE, xb.DISPLAYNAME)),
    )
    own = parse_multistatus(response.content, collection.url).responses[0]
    return {"types": own.child_tags(xb.RESOURCETYPE), "name": own.text(xb.DISPLAYNAME)}


def test_discovery_from_root_finds_home_and_identifies_radicale(dav_account: DavAccount) -> None:
    counter = RequestCounter()
    with make_client(dav_account, counter=counter) as dav:
        found = find_collection(dav, "contacts", "friends", create=True)  # no listing of others
    assert found.url == f"{dav_account.url}{dav_account.username}/friends/"
    assert found.exists is False
    assert dav.server.product == "radicale" and dav.server.version >= (3, 9)
    assert counter.count == 3  # root -> principal -> collection
    assert found.can_bulk_create()


def test_discovery_from_a_url_inside_the_account(dav_account: DavAccount) -> None:
    with make_client(dav_account) as dav:
        find_collection(dav, "calendars", "work").ensure_exists("Work")
    inside = f"{dav_account.url}{dav_account.username}/work/"
    with make_client(dav_account, url=inside) as dav:
        found = find_collection(dav, "calendars", "work")
        missing = find_collection(dav, "calendars", "nothere", create=True)
    assert found.url == inside and found.exists
    assert not found.can_bulk_create()
    assert missing.exists is False


def test_a_missing_collection_is_offered_for_creation_only_on_an_account_without_its_kind(
    dav_account: DavAccount,
) -> None:
    counter = RequestCounter()
    with make_client(dav_account, counter=counter) as dav:
        first = find_collection(dav, "calendars", "work")
        assert first.exists is False  # the account has no calendar: this one may be made
        assert counter.count == 4  # root -> principal -> collection -> the home's listing
        first.ensure_exists("Work")
        with pytest.raises(ServerSettingError) as info:
            find_collection(dav, "calendars", "wrok")
        assert find_collection(dav, "contacts", "wrok").exists is False  # no addressbook yet
    assert str(info.value) == (
        "[server] calendar: the account has no calendar named 'wrok'; its calendars: 'work'. "
        "Did you mean 'work'? Correct the name, or set create = true in [server] to create "
        "'wrok'"
    )


def test_open_collection_makes_no_request(dav_account: DavAccount) -> None:
    counter = RequestCounter()
    with make_client(dav_account, counter=counter) as dav:
        opened = open_collection(dav, f"/{dav_account.username}/x/", "contacts")
    assert counter.count == 0
    assert opened.url == f"{dav_account.url}{dav_account.username}/x/" and opened.exists


def test_created_collections_have_the_right_type_and_name(
    client: DavClient, contacts: Collection, calendar: Collection
) -> None:
    assert resource_props(client, contacts) == {
        "types": {xb.COLLECTION, xb.ADDRESSBOOK}, "name": "Contacts"}
    assert resource_props(client, calendar) == {
        "types": {xb.COLLECTION, xb.CALENDAR}, "name": "Calendar"}
    again = find_collection(client, "contacts", "contacts")
    assert again.exists
    with pytest.raises(DavError, match="not a calendar"):
        find_collection(client, "calendars", "contacts")


def test_conditional_create_update_delete(contacts: Collection) -> None:
    href = contacts.href_for("alice@example.org")
    assert href == f"{contacts.path}alice@example.org.vcf"
    etag = contacts.create(href, vcard("alice@example.org", "Alice"))
    assert etag and contacts.list_etags() == {href: etag}
    with pytest.raises(PreconditionFailed):
        contacts.create(href, vcard("alice@example.org", "Alice again"))
    new_etag = contacts.update(href, vcard("alice@example.org", "Alice B."), etag)
    assert new_etag and new_etag != etag
    with pytest.raises(PreconditionFailed, match=href):
        contacts.update(href, vcard("alice@example.org", "stale"), etag)
    with pytest.raises(PreconditionFailed):
        contacts.delete(href, etag)
    contacts.delete(href, new_etag)
    assert contacts.list_etags() == {}
    contacts.delete(href, None)  # already gone: done


def test_bad_item_is_a_dav_error_naming_the_href(contacts: Collection) -> None:
    href = contacts.href_for("broken")
    with pytest.raises(DavError, match=r"PUT .*broken\.vcf.*HTTP 400") as info:
        contacts.create(href, b"this is not a vcard")
    assert info.value.status == 400


def test_sync_initial_incremental_and_bad_token(contacts: Collection) -> None:
    assert contacts.supports_sync_collection()
    hrefs = [contacts.href_for(f"c{i}") for i in range(3)]
    etags = [contacts.create(h, vcard(f"c{i}")) for i, h in enumerate(hrefs)]
    first = contacts.sync(None)
    assert first.changed == dict(zip(hrefs, etags, strict=True)) and not first.deleted
    changed = contacts.update(hrefs[0], vcard("c0", "Changed"), etags[0])
    contacts.delete(hrefs[1], etags[1])
    second = contacts.sync(first.sync_token)
    assert second.changed == {hrefs[0]: changed}
    assert second.deleted == {hrefs[1]}
    assert second.sync_token != first.sync_token
    assert contacts.sync(second.sync_token).changed == {}
    with pytest.raises(InvalidSyncToken):
        contacts.sync("http://radicale.org/ns/sync/not-a-token")


def test_on_radicale_the_probe_reads_getlastmodified_and_getctag_until_a_mark_is_kept(
    calendar: Collection,
) -> None:
    """One PROPFIND. On Radicale (quirk "modified_marks") with no mark stored it asks for
    getctag and getlastmodified; the latter is kept as a mark only once settled (an item
    was just added: at first it is not); with a mark stored, for it alone."""
    client = calendar._client
    started = time.monotonic()
    calendar.create(calendar.href_for("e0"), vevent("e0"))
    before_count = client.counter.count
    fresh = calendar.probe()
    assert client.counter.count == before_count + 1
    assert fresh.ctag and fresh.modified and fresh.sync_token is None
    # Under a second from the write to the answer: Radicale's whole-second times are then
    # at most 1 s apart, short of the 1 s + round trip settling asks (`dav.probe.settled`);
    # a machine slower than that may find the change settled already.
    if time.monotonic() - started < 1.0:
        assert fresh.mark is None
    time.sleep(2.2)
    before = calendar.probe(marked=True)
    assert before.ctag is None  # getlastmodified alone: no walk over every item
    assert before.mark == before.modified == fresh.modified  # the same time, now settled
    calendar.create(calendar.href_for("e1"), vevent("e1"))
    after = calendar.probe(marked=True)
    assert after.modified and not after.shows_no_change(None, None, before.mark)
    full = calendar.probe()
    assert full.ctag and full.ctag != fresh.ctag


def test_multiget_batches_and_missing_href(calendar: Collection) -> None:
    hrefs = [calendar.href_for(f"ev-{i}") for i in range(20)]
    for i, href in enumerate(hrefs):
        calendar.create(href, vevent(f"ev-{i}", day=1 + i))
    missing = calendar.href_for("nope")
    # Ask with a differently encoded spelling: results come back in canonical form.
    asked = [*hrefs, missing, hrefs[3].replace("-", "%2D")]
    fetched = {item.href: item for item in calendar.multiget(asked)}
    assert set(fetched) == {*hrefs, missing}
    assert fetched[missing].data is None and "404" in (fetched[missing].error or "")
    etags = calendar.list_etags()
    for i, href in enumerate(hrefs):
        item = fetched[href]
        assert item.error is None and item.etag == etags[href]
        assert f"UID:ev-{i}" in (item.data or b"").decode()


def test_bulk_create_contacts(client: DavClient) -> None:
    collection = find_collection(client, "contacts", "bulk", displayname="Bulk book")
    assert collection.can_bulk_create()
    uids = [f"uid-{i}" for i in range(195)] + [
        "with space", "sl/ash", ".hidden", "ends.vcf", "ünïcödé"]
    counter_before = client.counter.count
    created = collection.bulk_create([(uid, vcard(uid, f"N{i}")) for i, uid in enumerate(uids)])
    assert client.counter.count - counter_before == 3  # PUT, PROPPATCH, sync listing
    assert collection.exists and not collection.can_bulk_create()
    assert set(created) == set(uids)
    listing = collection.list_etags()
    assert {c.href: c.etag for c in created.values()} == listing
    fetched = {f.href: f.data for f in collection.multiget([created["sl/ash"].href])}
    assert b"UID:sl/ash" in (fetched[created["sl/ash"].href] or b"")
    assert resource_props(client, collection) == {
        "types": {xb.COLLECTION, xb.ADDRESSBOOK}, "name": "Bulk book"}
    with pytest.raises(DavError, match="already exists"):
        collection.bulk_create([("x", vcard("x"))])


def test_bulk_create_calendar_with_recurrence_and_todo(client: DavClient) -> None:
    collection = find_collection(client, "calendars", "bulkcal", displayname="Bulk cal")
    items = [(f"event-{i}", vevent(f"event-{i}", day=1 + i % 28, tz=i < 3)) for i in range(48)]
    items += [("weekly-standup", RECURRING), ("todo/with slash", TODO)]
    created = collection.bulk_create(items)
    assert set(created) == {uid for uid, _ in items}
    assert {c.href: c.etag for c in created.values()} == collection.list_etags()
    standup = next(iter(collection.multiget([created["weekly-standup"].href])))
    text = (standup.data or b"").decode()
    assert "RECURRENCE-ID" in text and text.count("BEGIN:VEVENT") == 2
    todo = next(iter(collection.multiget([created["todo/with slash"].href])))
    assert b"BEGIN:VTODO" in (todo.data or b"")
    assert resource_props(client, collection) == {
        "types": {xb.COLLECTION, xb.CALENDAR}, "name": "Bulk cal"}


def test_bulk_create_sends_overlong_uids_one_by_one(client: DavClient) -> None:
    collection = find_collection(client, "contacts", "longuids")
    long_uid = "x" * 300
    created = collection.bulk_create([("short", vcard("short")), (long_uid, vcard(long_uid))])
    assert created[long_uid].href == collection.href_for(long_uid)
    assert {c.href: c.etag for c in created.values()} == collection.list_etags()


def test_wrong_password_is_an_auth_error_after_one_request(dav_account: DavAccount) -> None:
    counter = RequestCounter()
    with make_client(dav_account, password="wrong", counter=counter) as dav:
        with pytest.raises(DavAuthError) as info:
            find_collection(dav, "contacts", "contacts")
        assert counter.count == 1
        with pytest.raises(DavAuthError):
            open_collection(dav, dav_account.url + "u/c/", "contacts").probe()
        assert counter.count == 2
    message = str(info.value)
    assert dav_account.username in message and "127.0.0.1" in message
    assert "wrong" not in message and "Basic" not in message


def test_counter_counts_every_request_by_method(dav_account: DavAccount) -> None:
    counter = RequestCounter()
    with make_client(dav_account, counter=counter) as dav:
        collection = find_collection(dav, "contacts", "counted", create=True)
        collection.ensure_exists()
        collection.create(collection.href_for("a"), vcard("a"))
        collection.probe()
        collection.sync(None)
    assert counter.by_method == {"PROPFIND": 4, "MKCOL": 1, "PUT": 1, "REPORT": 1}
    assert counter.count == 7


def test_unreachable_server_is_dav_unreachable() -> None:
    from davsync.dav.api import DavUnreachable
    from tests.fixtures.ports import free_port

    counter = RequestCounter()
    slept: list[float] = []
    auth = BasicAuthenticator("u", Secret("pw"))
    url = f"http://127.0.0.1:{free_port()}/"
    with (
        DavClient(url, auth, counter=counter, sleep=slept.append, max_retries=2) as dav,
        pytest.raises(DavUnreachable, match=r"127\.0\.0\.1"),
    ):
        find_collection(dav, "contacts", "x")
    assert counter.count == 3 and len(slept) == 2


class PoisonTransport(httpx.HTTPTransport):
    """The real network, except that a multiget naming the poisoned href fails as a whole,
    the way some servers answer a REPORT when one stored item breaks their parser."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "REPORT" and b"poison" in request.read():
            return httpx.Response(500, text="internal error")
        return super().handle_request(request)


def test_multiget_bisects_a_failing_batch_down_to_the_bad_href(
    dav_account: DavAccount,
) -> None:
    counter = RequestCounter()
    auth = BasicAuthenticator(dav_account.username, Secret(dav_account.password))
    with DavClient(dav_account.url, auth, counter=counter, transport=PoisonTransport(),
                   multiget_batch=8, sleep=lambda _: None, max_retries=1) as dav:
        collection = find_collection(dav, "contacts", "bisect")
        collection.ensure_exists()
        hrefs = [collection.href_for(f"p{i}") for i in range(16)]
        for i, href in enumerate(hrefs):
            collection.create(href, vcard(f"p{i}"))
        poison = collection.href_for("poison")
        collection.create(poison, vcard("poison"))
        before = counter.count
        fetched = {item.href: item for item in collection.multiget([*hrefs, poison])}
    assert set(fetched) == {*hrefs, poison}
    assert [fetched[h].error for h in hrefs] == [None] * 16
    assert fetched[poison].data is None and "HTTP 500" in (fetched[poison].error or "")
    # batches [8][8][poison]: 2 good REPORTs; the lone poison: 1 try + 1 retry
    assert counter.count - before == 4


def test_bulk_create_refuses_repeated_uids_before_any_request(client: DavClient) -> None:
    collection = find_collection(client, "contacts", "dupes")
    before = client.counter.count
    with pytest.raises(DavError, match="'a' repeats"):
        collection.bulk_create([("a", vcard("a")), ("b", vcard("b")), ("a", vcard("a"))])
    assert client.counter.count == before and not collection.exists


def test_ensure_exists_accepts_a_collection_created_meanwhile(dav_account: DavAccount) -> None:
    with make_client(dav_account) as first, make_client(dav_account) as second:
        mine = find_collection(first, "calendars", "race")
        find_collection(second, "calendars", "race").ensure_exists()
        mine.ensure_exists()  # 409 from the server, then a PROPFIND shows it is a calendar
        assert mine.exists and mine.probe().ctag
