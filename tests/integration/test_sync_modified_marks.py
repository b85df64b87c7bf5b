"""The getlastmodified mark on Radicale (`dav.probe`): a no-op asks for it alone once it is
settled, every kind of change still moves it, and what it cannot see (an edit made in the
storage behind Radicale's back, its file time kept) is seen once the mark is an hour old."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from tests.fixtures.proxy import LoopbackProxy
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import Device
from tests.integration.test_sync_safety import (
    card,
    delete,
    proxied,
    put,
    server_hrefs,
    write_cards,
)

SETTLE = 2.2  # seconds after a change before its time is a mark (1 s + the round trip)


def state(device: Device) -> sqlite3.Connection:
    return sqlite3.connect(next((device.root / "state").glob("*.sqlite")))


def marks(device: Device) -> dict[str, str | None]:
    with state(device) as db:
        return {name.split(":")[1].split("@")[0]: modified
                for name, modified in db.execute("SELECT name, modified FROM collections")}


def probes(proxy: LoopbackProxy) -> list[bytes]:
    return [r.body for r in proxy.seen if r.method == "PROPFIND"]


def synced(tmp_path: Path, account: DavAccount, proxy: LoopbackProxy) -> Device:
    """A device that uploaded a few contacts, then ran once more after they settled."""
    device = Device(tmp_path / "d", account)
    proxied(device, proxy)
    write_cards(device, {f"m{i}": f"Mark {i}" for i in range(5)})
    assert device.sync()["exit"] == 0
    assert device.sync()["exit"] == 0  # the calendar, made empty by the first run, is read
    # Whether the second run already finds the upload settled depends on how long the two runs
    # took (a loaded CI machine: yes), so it is not asserted here; the rule itself is
    # tests/unit/test_dav_probe.py's.
    time.sleep(SETTLE)
    got = device.sync()
    assert got["http_requests"] == 2  # the getctags said nothing changed; the times are kept
    assert all(marks(device).values())
    return device


def test_once_settled_a_no_op_asks_for_getlastmodified_alone(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    with LoopbackProxy(dav_account.url) as proxy:
        device = synced(tmp_path, dav_account, proxy)
        proxy.seen.clear()
        got = device.sync()
        assert got["exit"] == 0 and got["http_requests"] == 2
        bodies = probes(proxy)
        assert len(bodies) == 2
        assert all(b"getlastmodified" in b and b"getctag" not in b for b in bodies)


def test_changes_deletions_and_additions_by_another_client_all_move_the_mark(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    with LoopbackProxy(dav_account.url) as proxy:
        device = synced(tmp_path, dav_account, proxy)
        name = server_hrefs(dav_account, "contacts")[0].rsplit("/", 1)[-1]
        delete(dav_account, f"contacts/{name}")
        got = device.sync()
        assert got["collections"]["contacts"]["deleted_local"] == 1, got
        put(dav_account, "contacts", "added.vcf", card("added", "Added Later"))
        got = device.sync()
        assert got["collections"]["contacts"]["downloaded"] == 1, got
        assert "Added Later" in (device.contacts / "added.vcf").read_text(encoding="utf-8")


def test_an_edit_behind_the_servers_back_with_its_old_time_is_seen_once_the_mark_is_old(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """The documented limit: such an edit does not move getlastmodified, so it waits for the
    mark's lifetime (an hour); then the getctag, which reads every item, finds it."""
    with LoopbackProxy(dav_account.url) as proxy:
        device = synced(tmp_path, dav_account, proxy)
        folder = (dav_account.server.storage / "collection-root" / dav_account.username
                  / "contacts")
        target = next(p for p in folder.iterdir()
                      if p.is_file() and b"UID:m1\r\n" in p.read_bytes())
        before = target.stat()
        target.write_text(card("m1", "Edited Behind"), encoding="utf-8")
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert device.sync()["collections"]["contacts"]["downloaded"] == 0  # not seen yet
        with state(device) as db:
            db.execute("UPDATE collections SET modified_at = modified_at - 7200")
        got = device.sync()
        assert got["collections"]["contacts"]["downloaded"] == 1, got
        assert any("Edited Behind" in f.read_text(encoding="utf-8")
                   for f in device.contacts.glob("*.vcf"))


def test_after_a_change_too_recent_to_mark_the_next_no_op_is_still_one_probe(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """A change's time within a second of the probe cannot be the next mark: the run reads
    the getctag (before its listing) instead, so the run after it is still one request per
    collection, and the time is kept once settled."""
    with LoopbackProxy(dav_account.url) as proxy:
        device = synced(tmp_path, dav_account, proxy)
        put(dav_account, "contacts", "fresh.vcf", card("fresh", "Just Now"))
        got = device.sync()
        assert got["collections"]["contacts"]["downloaded"] == 1, got
        assert device.sync()["http_requests"] == 2
        time.sleep(SETTLE)
        assert device.sync()["http_requests"] == 2
        proxy.seen.clear()
        assert device.sync()["http_requests"] == 2
        assert all(b"getctag" not in body for body in probes(proxy))


def test_with_collections_all_a_settled_no_op_lists_getlastmodified_alone(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    """`collections = "all"`: once every collection synced before holds a settled mark, the
    listing of the home asks for getlastmodified, not getctag (which would read every item
    of every collection); a change in one collection is still seen from that listing."""
    from tests.integration.test_sync_collections import Device as AllDevice
    from tests.integration.test_sync_collections import vcard

    with LoopbackProxy(dav_account.url) as proxy:
        device = AllDevice(tmp_path / "all", proxy.url, dav_account, calendars=None)
        (device.contacts / "friends").mkdir(parents=True)
        (device.contacts / "friends" / "f1.vcf").write_bytes(vcard("f1", "Friend One"))
        for _ in range(2):  # made and filled, then read once more
            assert device.sync()[0] == 0
        time.sleep(SETTLE)
        code, out = device.sync()  # getctag decides; the settled times are kept
        assert code == 0 and out["http_requests"] == 1, out
        proxy.seen.clear()
        code, out = device.sync()
        assert code == 0 and out["http_requests"] == 1, out
        listings = probes(proxy)
        assert len(listings) == 1
        assert all(b"getlastmodified" in b and b"getctag" not in b for b in listings)
        put(dav_account, "friends", "f2.vcf", card("f2", "Friend Two"))
        code, out = device.sync()
        assert code == 0 and out["collections"]["friends"]["downloaded"] == 1, out
