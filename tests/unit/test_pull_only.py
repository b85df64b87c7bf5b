"""A pull-only run (the daemon's restore mode) against the real engine and an in-memory
collection: server changes reach the device, nothing is written to the server, every device
change stays pending (counted) and goes out on the first two-way run."""

from __future__ import annotations

from pathlib import Path

import pytest

from davsync.dav.api import DavError
from tests.unit.memdav import MemCollection
from tests.unit.rig import Rig, vcard


class Guarded(MemCollection):
    """Fails the test on any write to the server while `read_only`."""

    read_only = False

    def _maybe_fail(self) -> None:
        assert not self.read_only, "a pull-only run wrote to the server"
        super()._maybe_fail()

    def ensure_exists(self, displayname: str | None = None) -> None:
        assert not self.read_only, "a pull-only run created the collection"
        super().ensure_exists(displayname)


def _paired(tmp_path: Path) -> tuple[Rig, Guarded]:
    rig = Rig(tmp_path)
    rig.remote = remote = Guarded()
    for uid, name in (("edit", "Edith"), ("gone", "Gone"), ("both", "Base")):
        (rig.dir / f"{uid}.vcf").write_bytes(vcard(uid, name))
    rig.sync()
    return rig, remote


def test_pull_only_downloads_and_holds_every_device_change(tmp_path: Path) -> None:
    rig, remote = _paired(tmp_path)
    rig.remote.put_raw("/u/c/srv.vcf", vcard("srv", "From the server"))
    rig.remote.update("/u/c/both.vcf", vcard("both", "Server edit"), None)
    (rig.dir / "new.vcf").write_bytes(vcard("new", "New on device"))
    (rig.dir / "edit.vcf").write_bytes(vcard("edit", "Edith changed"))
    (rig.dir / "gone.vcf").unlink()
    (rig.dir / "both.vcf").write_bytes(vcard("both", "Device edit"))
    held_server = dict(remote.items)
    remote.read_only = True

    report = rig.sync(pull_only=True)

    assert rig.device()["srv"] == "From the server"  # downloaded
    assert rig.device()["both"] == "Device edit"  # a conflict: the device file is kept
    assert remote.items == held_server
    assert report.held == 4 and report.pending == 4
    assert "4 held back (restore mode)" in report.summary()
    again = rig.sync(pull_only=True)
    assert again.pending == 4 and again.downloaded == 0

    remote.read_only = False
    both = rig.sync()
    assert both.pending == 0 and both.held == 0
    server = rig.server()
    assert server["new"] == "New on device" and server["edit"] == "Edith changed"
    assert "gone" not in server and server["srv"] == "From the server"
    assert both.conflicts == 1  # decided now, by the policy (keep both)


@pytest.mark.parametrize("status", [500, 400])
def test_a_device_change_the_server_did_not_take_is_pending(tmp_path: Path,
                                                            status: int) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.remote.fail_next_write = DavError(f"PUT /u/c/a.vcf: HTTP {status}", status)
    assert rig.sync().pending == 1  # failed (500) or refused (400)
    assert rig.sync().pending == (1 if status == 400 else 0)  # refused: not sent again


class NoServer:
    """A DAV client a pull-only metadata sync must not use at all."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a pull-only metadata sync used the client ({name})")


def test_pull_only_holds_a_display_name_changed_on_the_device(tmp_path: Path) -> None:
    from davsync.core.collections import ServerCollection
    from davsync.report import CollectionReport
    from davsync.state.store import CollectionMeta, StateStore
    from davsync.sync.collections import sync_meta
    from davsync.sync.values import Target

    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "displayname").write_text("Job")  # changed on the device since the last sync
    store = StateStore(tmp_path / "state.sqlite")
    try:
        store.save_collection("k", "contacts", "http://dav.test/u/work/")
        store.save_meta("k", CollectionMeta("work", displayname="Work"))
        target = Target("contacts", "work", folder, "k", url="http://dav.test/u/work/")
        listing = ServerCollection("work", "/u/work/", displayname="Work")
        report = CollectionReport()
        sync_meta(NoServer(), store, target, listing, report,  # type: ignore[arg-type]
                  pull_only=True)
        meta = store.meta("k")
        assert meta is not None and meta.displayname == "Work"  # not recorded as sent
        assert (folder / "displayname").read_text() == "Job"  # the device's value stays
        assert report.errors == [] and report.conflict_items == []
    finally:
        store.close()
