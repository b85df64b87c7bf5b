"""Data safety of `davsync sync` against a real Radicale: a device folder that vanished, a
collection gone from the server, a deletion racing the download, items the server refuses or
that are too large, and a kill -9 at every request of a first upload and of a pairing."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from davsync.app.sync import run_sync
from davsync.config import load_config
from davsync.core.convert.singlefile import split_vcards
from davsync.core.item import parse_item
from davsync.devtools.radicale_local import LocalRadicale, start_radicale
from tests.fixtures.proxy import DROP, Drop, LoopbackProxy, Reply, Request, Upstream
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device, server_items

MISSING = "the device folder is missing"


def card(uid: str, fn: str, extra: str = "") -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\n{extra}END:VCARD\r\n"


def event(uid: str, dtstart: str = "20260105T090000Z") -> str:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{dtstart}\r\nSUMMARY:{uid}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def dav(account: DavAccount) -> httpx.Client:
    """A client of the test's own plain-http Radicale, as another DAV client would be (no CA
    bundle loaded: the kill tests make hundreds of these requests)."""
    return httpx.Client(base_url=f"{account.url}{account.username}/",
                        auth=(account.username, account.password), verify=False,  # noqa: S501
                        timeout=60)  # a bulk PUT beside the other worker's tests: not 5 s


def put(account: DavAccount, collection: str, name: str, text: str) -> None:
    with dav(account) as client:
        answer = client.put(f"{collection}/{name}", content=text.encode())
    assert answer.status_code in (201, 204), answer.text


def delete(account: DavAccount, path: str) -> None:
    with dav(account) as client:
        answer = client.delete(path)
    assert answer.status_code in (200, 204), answer.text


def server_hrefs(account: DavAccount, collection: str) -> list[str]:
    with dav(account) as client:
        listing = client.request("PROPFIND", f"{collection}/", headers={"Depth": "1"})
    if listing.status_code == 404:
        return []
    assert listing.status_code == 207
    hrefs = re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", listing.text)
    return [h for h in hrefs if not h.endswith("/")]


def write_cards(device: Device, cards: dict[str, str]) -> None:
    for uid, fn in cards.items():
        (device.contacts / f"{uid}.vcf").write_text(card(uid, fn), encoding="utf-8")


# ---- a device folder that vanished (issue 8.1) ------------------------------------------------

def test_a_vanished_device_folder_stops_the_collection_and_deletes_nothing(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(4)})
    assert laptop.sync()["exit"] == 0
    phone = Device(tmp_path / "phone", dav_account)
    assert phone.sync()["exit"] == 0 and len(phone.uids()) == 4

    laptop.contacts.rename(tmp_path / "moved-away")  # an unmounted disk, a renamed folder
    proc = laptop.run("sync")
    assert proc.returncode == 1
    assert f"error: {laptop.contacts}: {MISSING}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not laptop.contacts.exists()  # not re-created empty
    assert len(server_items(dav_account, "contacts")) == 4
    again = laptop.sync()  # still stopped, still nothing deleted; the calendar still syncs
    assert again["exit"] == 1 and MISSING in again["collections"]["contacts"]["errors"][0][
        "reason"]
    assert again["collections"]["personal"]["errors"] == []
    assert phone.sync()["exit"] == 0 and len(phone.uids()) == 4

    (tmp_path / "moved-away").rename(laptop.contacts)  # the disk is back: all is well
    back = laptop.sync()
    assert back["exit"] == 0 and back["collections"]["contacts"]["deleted_remote"] == 0


def test_an_emptied_folder_asks_before_deleting_every_item_however_few(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(4)})
    assert laptop.sync()["exit"] == 0
    for path in laptop.contacts.glob("*.vcf"):  # an empty mount point looks like this
        path.unlink()
    stopped = laptop.sync()
    assert stopped["exit"] == 1
    [error] = stopped["collections"]["contacts"]["errors"]
    assert error["item"] == str(laptop.contacts)  # the folder a user knows, not a state key
    assert error["reason"].startswith("would delete 4 of 4 items on the server; stopped for safety")
    assert len(server_items(dav_account, "contacts")) == 4
    allowed = laptop.sync("--allow-mass-delete")
    assert allowed["exit"] == 0 and allowed["collections"]["contacts"]["deleted_remote"] == 4
    assert server_items(dav_account, "contacts") == {}


def test_a_device_folder_that_is_a_file_is_reported_not_read_as_empty(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {"c0": "Person 0"})
    assert laptop.sync()["exit"] == 0
    shutil.rmtree(laptop.contacts)
    laptop.contacts.write_text("not a folder")
    proc = laptop.run("sync")  # a configured path that names a file is a config error
    assert proc.returncode == 2
    assert f"[device] contacts: {laptop.contacts} is not a folder" in proc.stderr
    assert len(server_items(dav_account, "contacts")) == 1


def test_a_first_run_creates_a_configured_folder_that_does_not_exist_yet(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {"c0": "Person 0"})
    assert laptop.sync()["exit"] == 0
    phone = Device(tmp_path / "phone", dav_account)
    shutil.rmtree(phone.contacts)
    got = phone.sync()
    assert got["exit"] == 0, got
    assert phone.uids() == laptop.uids()


# ---- a collection gone from the server (issue 8.3) --------------------------------------------

def test_a_collection_gone_from_the_server_is_created_again(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """The state knows the collection's URL (as after a kill before the first upload landed):
    a probe answering 404 means create it, not PUT items into nothing (409) on every run."""
    laptop = Device(tmp_path / "laptop", dav_account)
    assert laptop.sync()["exit"] == 0  # empty: creates the collections, the state has URLs
    delete(dav_account, "contacts/")
    write_cards(laptop, {"c0": "Person 0", "c1": "Person 1"})
    got = laptop.sync()
    assert got["exit"] == 0, got
    assert server_items(dav_account, "contacts") == laptop.uids()
    assert laptop.sync()["http_requests"] == 2


# ---- a deletion racing the download (issue 8.4) -----------------------------------------------

def proxied(device: Device, proxy: LoopbackProxy) -> None:
    text = device.config.read_text(encoding="utf-8")
    device.config.write_text(text.replace(device.account.url, proxy.url), encoding="utf-8")


def delete_before_multiget(account: DavAccount, victims: list[str]
                           ) -> Callable[[Request, Upstream], Reply]:
    """A handler: another client deletes `victims` just before davsync's multiget asks for them.
    Such a race exists only between a listing and its downloads, so the one-request sync with
    the data (Radicale's) is refused here, and davsync lists, then downloads."""
    def hook(request: Request, upstream: Upstream) -> Reply:
        if (request.method == "REPORT" and b"address-data" in request.body
                and b"multiget" not in request.body):
            return Reply(403, {}, b"not here")
        if request.method == "REPORT" and b"multiget" in request.body:
            for name in victims:
                if any(h.endswith(name) for h in server_hrefs(account, "contacts")):
                    delete(account, f"contacts/{name}")
        return upstream()
    return hook


def test_a_deletion_racing_the_download_is_applied_even_when_the_run_also_uploads(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    phone = Device(tmp_path / "phone", dav_account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(4)})
    with LoopbackProxy(dav_account.url, delete_before_multiget(dav_account, ["c0.vcf"])) as proxy:
        proxied(laptop, proxy)
        assert laptop.sync()["exit"] == 0
        assert phone.sync()["exit"] == 0
        put(dav_account, "contacts", "c0.vcf", card("c0", "Person 0 edited"))  # listed changed
        write_cards(laptop, {"c1": "Person 1 edited on the laptop"})  # this run writes too
        got = laptop.sync()
        assert got["exit"] == 0, got
        assert got["collections"]["contacts"]["deleted_local"] == 1
        assert set(laptop.uids()) == {"c1", "c2", "c3"}
        again = laptop.sync()
        assert again["exit"] == 0 and again["collections"]["contacts"]["errors"] == []
    assert server_items(dav_account, "contacts") == laptop.uids()


def test_a_device_edit_wins_over_a_deletion_racing_the_download(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {f"c{i}": f"Person {i}" for i in range(4)})
    with LoopbackProxy(dav_account.url, delete_before_multiget(dav_account, ["c0.vcf"])) as proxy:
        proxied(laptop, proxy)
        assert laptop.sync()["exit"] == 0
        put(dav_account, "contacts", "c0.vcf", card("c0", "Person 0 edited on the server"))
        write_cards(laptop, {"c0": "Person 0 edited on the laptop"})
        got = laptop.sync()
        assert got["exit"] == 0, got
    assert set(laptop.uids()) == {"c0", "c1", "c2", "c3"}
    assert server_items(dav_account, "contacts") == laptop.uids()
    assert "edited on the laptop" in (laptop.contacts / "c0.vcf").read_text(encoding="utf-8")


# ---- items the server refuses, items too large (issue 8.11, issue 9.10) ----------------------

def count_puts(proxy: LoopbackProxy) -> int:
    return sum(1 for r in proxy.seen if r.method == "PUT")


def test_an_item_the_server_refuses_is_reported_once_sent_and_retried_only_when_changed(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    (laptop.calendars / "good.ics").write_text(event("good"), encoding="utf-8")
    (laptop.calendars / "bad.ics").write_text(event("bad", "notadate"), encoding="utf-8")
    with LoopbackProxy(dav_account.url) as proxy:
        proxied(laptop, proxy)
        first = laptop.sync("--only", "calendars")  # the one-request upload is refused too
        errors = first["collections"]["personal"]["errors"]
        bad = str(laptop.calendars / "bad.ics")  # the device file, with its folder
        assert first["exit"] == 1 and [e["item"] for e in errors] == [bad], errors
        assert errors[0]["reason"].startswith("refused by the server (HTTP 400")
        assert "not sent again until the file changes" in errors[0]["reason"]
        assert set(server_items(dav_account, "personal", "calendars")) == {"good"}

        before = count_puts(proxy)
        second = laptop.sync("--only", "calendars")
        assert count_puts(proxy) == before  # not sent again
        reason = second["collections"]["personal"]["errors"][0]["reason"]
        assert second["exit"] == 1 and reason == "still " + errors[0]["reason"]

        (laptop.calendars / "bad.ics").write_text(event("bad"), encoding="utf-8")  # fixed
        third = laptop.sync("--only", "calendars")
        assert third["exit"] == 0, third
        assert third["collections"]["personal"]["uploaded"] == 1
    assert set(server_items(dav_account, "personal", "calendars")) == {"good", "bad"}


@pytest.fixture
def small_radicale(tmp_path: Path) -> Iterator[LocalRadicale]:
    """A Radicale that takes no request body over 20 000 bytes (answers 413)."""
    server = start_radicale(tmp_path / "small-radicale", max_content_length=20_000)
    try:
        yield server
    finally:
        server.stop()


def test_an_item_too_large_for_the_server_is_reported_by_name_not_as_unreachable(
    tmp_path: Path, small_radicale: LocalRadicale
) -> None:
    small_radicale.add_user("u", "pw-u-Secret")
    account = DavAccount(small_radicale, "u", "pw-u-Secret")
    laptop = Device(tmp_path / "laptop", account)
    write_cards(laptop, {"small": "Small"})
    photo = "PHOTO;ENCODING=b;TYPE=JPEG:" + "A" * 30_000 + "\r\n"
    (laptop.contacts / "big.vcf").write_text(card("big", "Big", photo), encoding="utf-8")
    first = laptop.sync("--only", "contacts")
    errors = first["collections"]["contacts"]["errors"]
    big = str(laptop.contacts / "big.vcf")
    assert first["exit"] == 1 and [e["item"] for e in errors] == [big], first
    assert "HTTP 413" in errors[0]["reason"] and "smaller photo" in errors[0]["reason"]
    assert set(server_items(account, "contacts")) == {"small"}
    second = laptop.sync("--only", "contacts")
    assert second["collections"]["contacts"]["errors"][0]["reason"].startswith("still refused")
    assert second["http_requests"] <= 2  # the probe, nothing sent


def test_an_item_over_the_size_limit_is_not_uploaded(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    laptop = Device(tmp_path / "laptop", dav_account)
    write_cards(laptop, {"small": "Small"})
    photo = "PHOTO;ENCODING=b;TYPE=JPEG:" + "A" * (11 * 1024 * 1024) + "\r\n"
    (laptop.contacts / "huge.vcf").write_text(card("huge", "Huge", photo), encoding="utf-8")
    for run in range(2):
        got = laptop.sync("--only", "contacts")
        errors = got["collections"]["contacts"]["errors"]
        assert got["exit"] == 1 and len(errors) == 1, got
        assert errors[0]["item"].endswith("huge.vcf")
        assert "11.0 MiB, over the 10.0 MiB davsync sends for one item" in errors[0]["reason"]
        assert run == 0 or got["http_requests"] <= 2  # the probe; nothing sent
    assert set(server_items(dav_account, "contacts")) == {"small"}


# ---- kill -9 at every request of a first upload and of a pairing (issue 8.3) -----------------

@dataclass(frozen=True, order=True)
class Held:
    """One item as a side holds it."""

    uid: str
    hash: str
    label: str  # FN or SUMMARY: which of the test's versions it is


def held(data: bytes, kind: str) -> Held:
    item = parse_item(data, kind)  # type: ignore[arg-type]
    label = re.search(r"^(?:FN|SUMMARY):(.*?)\r?$", item.text, re.MULTILINE)
    assert item.uid is not None and label is not None
    return Held(item.uid, item.hash, label.group(1))


def device_holds(device: Device, kind: str) -> list[Held]:
    one_file = device.root / "all.vcf"  # the store of `file_pairing`
    if kind == "contacts" and one_file.exists():
        return sorted(held(item.text.encode(), kind) for item in split_vcards(
            one_file.read_bytes()))
    folder = device.contacts if kind == "contacts" else device.calendars
    return sorted(held(f.read_bytes(), kind) for f in folder.iterdir()
                  if f.suffix in (".vcf", ".ics"))


def server_holds(account: DavAccount, collection: str, kind: str) -> list[Held]:
    with dav(account) as client:
        return sorted(held(client.get(f"{account.url.rstrip('/')}{href}").content, kind)
                      for href in server_hrefs(account, collection))


class KillAt:
    """A proxy handler: SIGKILL the davsync process when request `k` arrives, then drop that
    request (the server never sees it) or forward it (the server does it, unheard)."""

    def __init__(self, k: int, forward: bool) -> None:
        self.k = k
        self.forward = forward
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = threading.Event()
        self.killed: Request | None = None

    def __call__(self, request: Request, upstream: Upstream) -> Reply | Drop:
        if request.number != self.k:
            return upstream()
        assert self.started.wait(60)
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.killed = request
        return upstream() if self.forward else DROP

    def run(self, device: Device, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "davsync.cli", "--config", str(device.config), "sync", *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started.set()
        self.proc.wait(timeout=120)


Prepare = Callable[[Device], dict[str, list[str]]]  # kind -> the labels each side must hold
COLLECTION = {"contacts": "contacts", "calendars": "personal"}
_KILL_USERS = itertools.count(1)
_READS = frozenset({"GET", "PROPFIND", "REPORT"})


def kill_at_every_request(
    tmp_path: Path, radicale_server: LocalRadicale, prepare: Prepare, *args: str,
    then: Prepare | None = None,
) -> int:
    """For k = 1..N (N: the requests of an uninterrupted run), die at request k: a normal run
    afterwards must leave device and server holding exactly the same items, each of the test's
    versions exactly once. A write is tried both ways (the server never saw it / did it
    unheard); for a read the two are the same. With `then`, the killed run is the second:
    the first (uninterrupted, through the same proxy, so the state keeps its URL) syncs what
    `prepare` made, then `then` changes things and says what each side must hold. Returns N."""
    def warm_up(device: Device, proxy: LoopbackProxy, wanted: dict[str, list[str]]
                ) -> dict[str, list[str]]:
        if then is None:
            return wanted
        assert device.sync(*args)["exit"] == 0
        wanted = then(device)
        proxy.seen.clear()  # the next request is number 1 again
        return wanted

    def fresh(name: str) -> Device:
        account = DavAccount(radicale_server, f"kill-{next(_KILL_USERS)}", "pw-kill-Secret")
        radicale_server.add_user(account.username, account.password)
        device = Device(tmp_path / name, account)
        text = device.config.read_text(encoding="utf-8")
        # one request at a time: the k-th request is the same one on every run
        device.config.write_text(text.replace("[device]", "concurrency = 1\n[device]"),
                                 encoding="utf-8")
        return device

    counting = fresh("count")
    prepared = prepare(counting)
    with LoopbackProxy(counting.account.url) as proxy:
        proxied(counting, proxy)
        warm_up(counting, proxy, prepared)
        assert counting.sync(*args)["exit"] == 0
        total = len(proxy.seen)
    plain = proxy.seen
    missed = []  # kill points a run finished before reaching (its request count varied)
    for k in range(1, total + 1):
        for forward in (False, True):
            if forward and plain[k - 1].method in _READS:
                continue
            device = fresh(f"k{k}-{'forward' if forward else 'drop'}")
            wanted = prepare(device)
            killer = KillAt(0, forward)  # request 0 never comes: the warm-up passes
            with LoopbackProxy(device.account.url, killer) as proxy:
                proxied(device, proxy)
                wanted = warm_up(device, proxy, wanted)
                killer.k = k
                killer.run(device, *args)
                where = f"killed at {killer.killed}, {'forwarded' if forward else 'dropped'}"
                if killer.killed is None:  # the run ended in fewer requests, and whole
                    assert killer.proc is not None and killer.proc.returncode == 0, where
                    missed.append(k)
                config = load_config(device.config)
                only = tuple(arg for arg in args if arg != "--only")
                after = run_sync(config, only=only)
                assert after.exit_code == 0, (where, after.as_json())
                settled = run_sync(config, only=only)
                assert settled.exit_code == 0, (where, settled.as_json())
            for kind, labels in wanted.items():
                on_device = device_holds(device, kind)
                on_server = server_holds(device.account, COLLECTION[kind], kind)
                assert on_device == on_server, (where, kind, on_device, on_server)
                assert sorted(h.label for h in on_device) == sorted(labels), (where, on_device)
                assert len({h.uid for h in on_device}) == len(on_device), (where, on_device)
    # Seen once in CI: a pairing run finished in fewer requests than the counting run, so
    # request 5 of 10 never came. Every kill point but a stray one must still be exercised.
    assert len(missed) <= 1, f"requests {missed} (of {total}) never came"
    return total


def first_upload(device: Device) -> dict[str, list[str]]:
    write_cards(device, {f"c{i}": f"Person {i}" for i in range(3)})
    return {"contacts": [f"Person {i}" for i in range(3)]}


def test_kill_9_at_every_request_of_a_first_upload_then_a_run_converges(
    tmp_path: Path, radicale_server: LocalRadicale
) -> None:
    """One collection (each run costs a process start); a calendar's first upload takes the
    same path, less the PROPPATCH of the addressbook's name."""
    total = kill_at_every_request(tmp_path, radicale_server, first_upload, "--only", "contacts")
    assert total >= 5  # discovery, the one-request upload, its name, the listing, settling


def pairing(device: Device) -> dict[str, list[str]]:
    """Items on the device only, on the server only, the same on both, and one added on
    both sides differently (a conflict: both versions stay, the device's as a copy)."""
    account = device.account
    with dav(account) as client:
        made = client.request("MKCOL", "contacts/", content=(
            b'<?xml version="1.0"?><mkcol xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
            b"<set><prop><resourcetype><collection/><C:addressbook/></resourcetype></prop></set>"
            b"</mkcol>"))
    assert made.status_code == 201, made.text
    write_cards(device, {"d0": "Device 0", "d1": "Device 1", "b0": "Both 0", "b1": "Both 1",
                         "x": "Device's X"})
    for uid, fn in {"s0": "Server 0", "s1": "Server 1", "b0": "Both 0", "b1": "Both 1",
                    "x": "Server's X"}.items():
        put(account, "contacts", f"{uid}.vcf", card(uid, fn))
    return {"contacts": ["Device 0", "Device 1", "Both 0", "Both 1", "Server 0", "Server 1",
                         "Device's X", "Server's X"]}


def test_kill_9_at_every_request_of_a_pairing_then_a_run_converges(
    tmp_path: Path, radicale_server: LocalRadicale
) -> None:
    total = kill_at_every_request(tmp_path, radicale_server, pairing, "--only", "contacts")
    assert total >= 6


def server_side_changes(device: Device) -> dict[str, list[str]]:
    """After `pairing` was synced, another client edits, deletes and adds on the server while
    the device edits too: the killed run is an incremental one (on Radicale: one streamed
    sync-collection from the token, carrying the data and the deletion)."""
    wanted = {"contacts": ["Device 0", "Device 1", "Both 0", "Both 1", "Server 0", "Server 1",
                           "Device's X", "Server's X"]}
    account = device.account
    put(account, "contacts", "s0.vcf", card("s0", "Server 0 v2"))
    delete(account, "contacts/s1.vcf")
    put(account, "contacts", "s2.vcf", card("s2", "Server 2"))
    write_cards(device, {"d0": "Device 0 v2"})
    changed = {"Server 0": "Server 0 v2", "Server 1": "Server 2", "Device 0": "Device 0 v2"}
    return {"contacts": [changed.get(label, label) for label in wanted["contacts"]]}


def test_kill_9_at_every_request_of_a_run_after_server_side_changes_then_a_run_converges(
    tmp_path: Path, radicale_server: LocalRadicale
) -> None:
    total = kill_at_every_request(tmp_path, radicale_server, pairing, "--only", "contacts",
                                  then=server_side_changes)
    assert total >= 4  # the probe, the streamed sync, the upload, settling


def file_pairing(device: Device) -> dict[str, list[str]]:
    """`pairing` with the device's contacts in one .vcf (a store that holds its writes in
    memory and rewrites the file once): a kill before, at or after that one rewrite."""
    wanted = pairing(device)
    cards = "".join(card(f.stem, held(f.read_bytes(), "contacts").label)
                    for f in sorted(device.contacts.iterdir()))
    shutil.rmtree(device.contacts)
    one_file = device.root / "all.vcf"
    one_file.write_text(cards, encoding="utf-8")
    text = device.config.read_text(encoding="utf-8")
    device.config.write_text(text.replace(
        f'contacts = "{device.contacts}"',
        f'contacts = {{ type = "singlefile", path = "{one_file}" }}'), encoding="utf-8")
    return wanted


def test_kill_9_at_every_request_of_a_pairing_with_a_file_store_then_a_run_converges(
    tmp_path: Path, radicale_server: LocalRadicale
) -> None:
    total = kill_at_every_request(tmp_path, radicale_server, file_pairing, "--only",
                                  "contacts")
    assert total >= 6


# ---- kill -9 while a large pairing's batches are being made durable (issue 13) ---------------

_PAIRED = 2100  # two batches of 1 000 records made durable in the background, then 100


class HoldTheLastProbe:
    """A proxy handler holding the PROPFIND for the sync-token a first pairing sends beside
    its query (with getctag or getlastmodified, `Collection.marks_after`) until the test has
    killed the process: until then the run cannot finish, so each kill point below is
    reached with the run still applying (or waiting at its end)."""

    def __init__(self) -> None:
        self.hold = True
        self.held = threading.Event()  # the run has staged everything and waits
        self.release = threading.Event()
        self.queried = False

    def __call__(self, request: Request, upstream: Upstream) -> Reply | Drop:
        if request.method == "REPORT":
            self.queried = True
        elif self.hold and self.queried and b"sync-token" in request.body:
            self.held.set()
            assert self.release.wait(120)
            return DROP
        return upstream()


def _count(folder: Path) -> tuple[int, int]:
    """(item files under their names, staged temporary files) in `folder`."""
    names = staged = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".vcf"):
                names += 1
            elif entry.name.startswith(".davsync-") and entry.name.endswith(".tmp"):
                staged += 1
    return names, staged


@pytest.fixture(scope="module")
def large_account(radicale_server: LocalRadicale) -> DavAccount:
    """An account whose addressbook holds `_PAIRED` cards, shared by the kill tests below:
    each pairs a new device with it, and each asserts that it left the server as it was."""
    account = DavAccount(radicale_server, f"kill-{next(_KILL_USERS)}", "pw-kill-Secret")
    radicale_server.add_user(account.username, account.password)
    cards = "".join(card(f"p{n}", f"Person {n}") for n in range(_PAIRED))
    with dav(account) as client:
        seeded = client.put("contacts/", content=cards.encode(),
                            headers={"Content-Type": "text/vcard; charset=utf-8"})
    assert seeded.status_code == 201, seeded.text
    return account


def whole_collection(account: DavAccount) -> list[Held]:
    """Every card of the account's addressbook, in one GET (Radicale answers a collection's
    GET with all its items)."""
    with dav(account) as client:
        answer = client.get("contacts/")
    assert answer.status_code == 200
    return sorted(held(item.text.encode(), "contacts") for item in split_vcards(answer.content))


@pytest.mark.parametrize("kill_when", ["a batch staged", "first batch being named",
                                       "second batch being named", "all staged, at the end"])
def test_kill_9_while_a_large_pairing_makes_its_batches_durable_then_a_run_converges(
    tmp_path: Path, large_account: DavAccount, kill_when: str
) -> None:
    """A pairing records each batch of 1 000 only once a background flush named its files,
    while the next batch is being written: a kill -9 while a batch is staged, while one is
    being named, or with everything staged and the last records not written, leaves files
    the next run records (same content on both sides) or downloads again; never an item
    twice or missing, and nothing uploaded."""
    account = large_account
    device = Device(tmp_path / "device", account)
    hold = HoldTheLastProbe()
    with LoopbackProxy(account.url, hold) as proxy:
        proxied(device, proxy)
        proc = subprocess.Popen(
            [sys.executable, "-m", "davsync.cli", "--config", str(device.config), "sync",
             "--only", "contacts"], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            reached = {
                # not a window a slow poll could miss: some batch is staged most of the run
                "a batch staged": lambda names, staged: staged >= 300,
                "first batch being named": lambda names, staged: names > 0,
                "second batch being named": lambda names, staged: names > 1000,
                "all staged, at the end": lambda names, staged: hold.held.is_set(),
            }[kill_when]
            while not reached(*_count(device.contacts)):
                assert proc.poll() is None, "the run ended before the kill point"
            proc.kill()
            proc.wait(timeout=60)
        finally:
            hold.release.set()
            proc.kill()
        hold.hold = False
        assert proc.returncode == -9
        config = load_config(device.config)
        assert run_sync(config, only=("contacts",)).exit_code == 0
        settled = run_sync(config, only=("contacts",))
        assert settled.exit_code == 0, settled.as_json()
    on_device = device_holds(device, "contacts")
    assert on_device == whole_collection(account)  # nothing went up, twice or at all
    assert sorted(h.label for h in on_device) == sorted(f"Person {n}" for n in range(_PAIRED))
