"""The servers people run, and how they misbehave: real Radicale/Xandikos, some behind a
loopback proxy (`tests.fixtures.proxy`) that makes them misbehave the way others do."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from davsync.core.kinds import Kind
from tests.fixtures.proxy import LoopbackProxy, Reply, Request, Upstream
from tests.integration.test_sync_radicale import SAMPLES, Account, Device, server_items


@dataclass
class Proxied:
    """`account` reached through a proxy at `url`."""

    account: Account
    url: str

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def password(self) -> str:
        return self.account.password

    def home(self, kind: Kind) -> str:
        return self.url + self.account.home(kind)[len(self.account.url):]

    @property
    def server_config(self) -> str:
        return getattr(self.account, "server_config", "")


def write_cards(device: Device, count: int, prefix: str = "card") -> None:
    for i in range(count):
        (device.contacts / f"{prefix}{i}.vcf").write_text(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{prefix}-{i}\r\nFN:Person {i}\r\nEND:VCARD\r\n")


def test_423_locked_is_retried_and_narrows_the_writes_in_flight(
    tmp_path: Path, xandikos_account: Account
) -> None:
    """Xandikos answers 423 when writes collide on its git lock; here the proxy makes the first
    three PUTs collide for certain."""
    refused = itertools.count()
    lock = threading.Lock()

    def locked(request: Request, upstream: Upstream) -> Reply:
        if request.method == "PUT":
            with lock:
                if next(refused) < 3:
                    return Reply(423, {"content-type": "text/plain"}, b"Locked")
        return upstream()

    with LoopbackProxy(xandikos_account.url, locked) as proxy:
        dev = Device(tmp_path / "d", Proxied(xandikos_account, proxy.url))
        write_cards(dev, 12)
        got = dev.sync("--only", "contacts")
        assert got["exit"] == 0, got
        assert got["collections"]["contacts"]["uploaded"] == 12
        assert len(proxy.requests("PUT")) == 12 + 3
    assert set(server_items(xandikos_account, "contacts")) == {f"card-{i}" for i in range(12)}


def test_puts_answered_without_etag_are_learnt_in_the_same_run(
    tmp_path: Path, dav_account: Account
) -> None:
    """A server that rewrites what it stores may omit the ETag; the run that wrote the items
    learns their etags, so the next run is one probe, not a re-download of everything."""

    def no_etag(request: Request, upstream: Upstream) -> Reply:
        reply = upstream()
        if request.method == "PUT":
            reply.headers.pop("etag", None)
        return reply

    with LoopbackProxy(dav_account.url, no_etag) as proxy:
        dev = Device(tmp_path / "d", Proxied(dav_account, proxy.url))
        assert dev.sync("--only", "contacts")["exit"] == 0  # creates the collection
        write_cards(dev, 120)
        wrote = dev.sync("--only", "contacts")
        assert wrote["exit"] == 0 and wrote["collections"]["contacts"]["uploaded"] == 120
        assert sum(1 for r in proxy.seen[-5:] if r.method == "REPORT") == 4  # sync + 3 multigets
        noop = dev.sync("--only", "contacts")
        assert noop["http_requests"] == 1, noop


RACED = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:raced\r\nFN:{}\r\nEND:VCARD\r\n"


def _other_client_put(request: Request, body: str) -> Request:
    headers = {k: v for k, v in request.headers.items()
               if k in ("authorization", "content-type")}
    return Request(0, "PUT", request.path, headers, body.encode())


def _assert_both_versions_kept(device: Device, account: Account) -> None:
    names = {parse_fn(p.read_text()) for p in device.contacts.glob("*.vcf")}
    assert {"From the device", "From another client"} <= names, names
    on_server = server_items(account, "contacts")
    assert on_server == device.uids("contacts") and len(on_server) == 2


def parse_fn(text: str) -> str:
    return next(line[3:] for line in text.splitlines() if line.startswith("FN:"))


def test_a_create_overwritten_where_if_none_match_is_ignored_becomes_a_conflict(
    tmp_path: Path, dav_account: Account
) -> None:
    """The server ignores If-None-Match: *, and another client creates the same item right
    after us: what the server then holds is not ours, so it must not be recorded as ours."""

    def ignore_if_none_match_then_other_client(request: Request, upstream: Upstream) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k != "if-none-match"}
        reply = proxy.forward(replace(request, headers=headers))
        if request.method == "PUT" and b"UID:raced" in request.body and b"device" in request.body:
            proxy.forward(_other_client_put(request, RACED.format("From another client")))
        return reply

    with LoopbackProxy(dav_account.url, ignore_if_none_match_then_other_client) as proxy:
        dev = Device(tmp_path / "d", Proxied(dav_account, proxy.url))
        assert dev.sync("--only", "contacts")["exit"] == 0
        (dev.contacts / "raced.vcf").write_text(RACED.format("From the device"))
        got = dev.sync("--only", "contacts")
        assert got["exit"] == 0, got
        assert got["collections"]["contacts"]["conflicts"] == 1
        dev.sync("--only", "contacts")
        _assert_both_versions_kept(dev, dav_account)


def test_a_create_refused_412_is_compared_in_the_same_run(
    tmp_path: Path, dav_account: Account
) -> None:
    """Another client's item got to the href first: compared and kept both now, exit 0."""

    def other_client_first(request: Request, upstream: Upstream) -> Reply:
        if request.method == "PUT" and b"UID:raced" in request.body and b"device" in request.body:
            proxy.forward(_other_client_put(request, RACED.format("From another client")))
        return upstream()

    with LoopbackProxy(dav_account.url, other_client_first) as proxy:
        dev = Device(tmp_path / "d", Proxied(dav_account, proxy.url))
        assert dev.sync("--only", "contacts")["exit"] == 0
        (dev.contacts / "raced.vcf").write_text(RACED.format("From the device"))
        got = dev.sync("--only", "contacts")
        assert got["exit"] == 0, got
        assert got["collections"]["contacts"]["conflicts"] == 1
        _assert_both_versions_kept(dev, dav_account)
        assert dev.sync("--only", "contacts")["http_requests"] <= 3


# As written in the vCard: C:\\Users is the text-escaped C:\Users. (A comma is not here: Radicale
# cuts the UID at it, which test_a_uid_the_server_changes_is_reported_once is about.)
ODD_UIDS = ["?q=1#frag", "50% off: \"quoted\" 'single' *", "C:\\\\Users\\\\x", "sp ace+{x}é"]


def test_any_uid_can_be_stored_and_comes_back_the_same(device: Device) -> None:
    assert device.sync("--only", "contacts")["exit"] == 0  # an existing collection: one PUT each
    for i, uid in enumerate(ODD_UIDS):
        (device.contacts / f"odd{i}.vcf").write_text(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Odd {i}\r\nEND:VCARD\r\n")
    got = device.sync("--only", "contacts")
    assert got["exit"] == 0, got["collections"]["contacts"]["errors"]
    assert got["collections"]["contacts"]["uploaded"] == len(ODD_UIDS)
    assert server_items(device.account, "contacts") == device.uids("contacts")
    assert device.sync("--only", "contacts")["http_requests"] == 1


def test_a_uid_the_server_changes_is_reported_once(tmp_path: Path, dav_account: Account) -> None:
    """Radicale stores UID:back\\slash as back\\\\slash (and UID:a,b as a)."""
    dev = Device(tmp_path / "d", dav_account)
    assert dev.sync("--only", "contacts")["exit"] == 0
    (dev.contacts / "bs.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:back\\slash\r\nFN:Backslash\r\nEND:VCARD\r\n")
    got = dev.sync("--only", "contacts")
    assert got["exit"] == 1
    [error] = got["collections"]["contacts"]["errors"]
    assert error["item"] == "bs.vcf"
    assert error["reason"].startswith("the server changed the UID 'back\\\\slash' to ")
    again = dev.sync("--only", "contacts")
    assert again["exit"] == 0 and again["http_requests"] == 1


def test_an_addressbook_and_a_calendar_of_the_same_name_are_reported_apart(
    tmp_path: Path, xandikos_account: Account
) -> None:
    """Xandikos keeps addressbooks and calendars in separate homes, so both can be "Default"
    (on Radicale they would be one URL)."""
    dev = Device(tmp_path / "d", xandikos_account, addressbook="Default", calendar="Default")
    write_cards(dev, 2)
    shutil.copy(next((SAMPLES / "calendars").glob("*.ics")), dev.calendars)
    got = dev.sync()
    assert got["exit"] == 0, got
    assert got["collections"].keys() == {"contacts/Default", "calendars/Default"}
    assert got["collections"]["contacts/Default"]["uploaded"] == 2
    assert got["collections"]["calendars/Default"]["uploaded"] == 1
    status = json.loads(dev.run("status", "--json").stdout)["sync"]
    assert status.keys() == {"contacts/Default", "calendars/Default"}
    assert status["calendars/Default"]["kind"] == "calendars"
    assert status["calendars/Default"]["name"] == "Default"
    assert status["calendars/Default"]["last_result"]["uploaded"] == 1
    human = dev.run("sync").stdout.splitlines()
    assert human == ["contacts/Default: up to date", "calendars/Default: up to date"]
