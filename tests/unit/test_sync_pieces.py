"""The pieces of one collection's sync on their own: gathering only reads, and the execution
table has a handler for every action a plan can hand it."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from davsync.core.plan import Op
from davsync.core.synced import Synced
from davsync.fsutil import in_background
from davsync.sources.vdir import VdirSource, _Batch
from davsync.state.store import StateStore
from davsync.sync.context import Context, SyncOptions
from davsync.sync.execute import Handlers
from davsync.sync.gather import DeviceGather
from tests.unit.memdav import MemCollection
from tests.unit.rig import Rig, vcard


def _ctx(tmp_path: Path) -> Context:
    folder = tmp_path / "device"
    folder.mkdir(exist_ok=True)
    return Context("c", VdirSource(folder, "contacts"), MemCollection(),
                   StateStore(tmp_path / "state.sqlite"), SyncOptions(),
                   lambda: datetime(2026, 11, 22, tzinfo=UTC), threading.Event())


def test_gathering_plans_uid_repairs_and_writes_nothing(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    folder = tmp_path / "device"
    (folder / "x.vcf").write_bytes(vcard(None, "No Uid"))
    (folder / "1.vcf").write_bytes(vcard("dup", "First"))
    (folder / "2.vcf").write_bytes(vcard("dup", "Second"))
    side = DeviceGather(ctx, {}).gather()
    assert [(a.op, a.device.ref if a.device else None) for a in side.repairs] == [
        (Op.REPAIR_UID, "2.vcf"), (Op.REPAIR_UID, "x.vcf")]
    assert (folder / "x.vcf").read_bytes() == vcard(None, "No Uid")  # reading wrote nothing
    assert (folder / "2.vcf").read_bytes() == vcard("dup", "Second")
    assert all(side.changes[a.uid] == a.device for a in side.repairs)


def test_every_op_a_plan_hands_over_has_a_handler(tmp_path: Path) -> None:
    handlers = Handlers(_ctx(tmp_path), lambda copy, name, href: None)
    assert set(handlers.table) == set(Op) - {Op.CONFLICT}  # conflicts are resolved first


class RefusingVdir(VdirSource):
    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        raise self.error(name)

    def error(self, name: str) -> Exception:
        from davsync.sources.base import SourceError

        return SourceError(f"{name} changed while davsync was writing it; left untouched")


def test_a_uid_repair_that_cannot_be_written_deletes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    (rig.dir / "b.vcf").write_bytes(vcard("b", "Bruno"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard(None, "Anna"))  # the UID line lost in an edit
    report = rig.sync(RefusingVdir(rig.dir, "contacts"))
    assert [e["reason"] for e in report.errors] == [
        "a.vcf changed while davsync was writing it; left untouched"]
    assert rig.server() == {"a": "Anna", "b": "Bruno"} and "a" in rig.store.items("c")
    rig.sync()  # written back with a new UID next time: the old item goes, the new one comes
    assert sorted(rig.device().values()) == ["Anna", "Bruno"] and "a" not in rig.device()
    assert rig.device() == rig.server()


class RacedVdir(VdirSource):
    """A vdir in which someone saves a file under the name of the first staged download just
    before the sync makes its batch durable."""

    def _take_batch(self) -> _Batch:
        staged = self._staged  # the race needs the name about to be placed
        if staged and not (self.path / staged[0].name).exists():
            (self.path / staged[0].name).write_bytes(vcard("theirs", "Their Own"))
        return super()._take_batch()


def test_a_download_whose_name_was_taken_at_flush_is_reported_not_recorded(
    tmp_path: Path,
) -> None:
    """Issue 13: a batch's files are named only at flush; one that cannot be named then (the
    user saved a file there meanwhile) must not be recorded as synced, keeps the user's file,
    and comes down again next run."""
    rig = Rig(tmp_path)
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server A"))
    report = rig.sync(RacedVdir(rig.dir, "contacts"))
    assert [e["reason"] for e in report.errors] == [
        f"{rig.dir / 'a.vcf'} appeared while syncing; left untouched"]
    assert rig.store.items("c") == {}
    assert (rig.dir / "a.vcf").read_bytes() == vcard("theirs", "Their Own")
    rig.sync()
    assert rig.device() == {"theirs": "Their Own", "a": "Server A"}
    assert rig.server() == {"theirs": "Their Own", "a": "Server A"}


class WatchedVdir(VdirSource):
    """A vdir that counts the batches it placed in the background, and whose name taken
    before one of them is placed stands for a user's file saved meanwhile."""

    def __init__(self, path: Path, steal: str) -> None:
        super().__init__(path, "contacts")
        self.background = 0
        self.steal = steal

    def start_flush(self) -> dict[str, str]:
        failed = super().start_flush()
        if self._flushing is not None:
            self.background += 1
            if self.steal in self._flushing.by_name:
                (self.path / self.steal).write_bytes(vcard("theirs", "Their Own"))
        return failed


def test_a_pairing_records_each_batch_only_once_its_background_flush_placed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a large download's batches are made durable in the background while the
    next is applied; a record is written only for a file already under its name, and a name
    taken before its batch was placed is reported, not recorded, and the user's file kept."""
    rig = Rig(tmp_path)
    for n in range(2500):
        rig.remote.put_raw(f"/u/c/{n}.vcf", vcard(f"uid-{n}", f"Person {n}"))
    recorded: list[str] = []
    upsert = StateStore.upsert

    def checked(store: StateStore, name: str, rows: list[tuple[Synced, str | None]]) -> None:
        for synced, _ in rows:
            assert synced.filename is not None and (rig.dir / synced.filename).is_file()
            recorded.append(synced.filename)
        upsert(store, name, rows)

    monkeypatch.setattr(StateStore, "upsert", checked)
    source = WatchedVdir(rig.dir, steal="uid-1700.vcf")
    report = rig.sync(source)
    assert source.background >= 2  # the batches of 1 000 went to the background
    assert [e["reason"] for e in report.errors] == [
        f"{rig.dir / 'uid-1700.vcf'} appeared while syncing; left untouched"]
    assert len(recorded) == len(set(recorded)) == 2499 and "uid-1700.vcf" not in recorded
    assert (rig.dir / "uid-1700.vcf").read_bytes() == vcard("theirs", "Their Own")
    assert not [p for p in rig.dir.iterdir() if p.name.startswith(".davsync-")]


@pytest.mark.parametrize("failing", [1, 2])
def test_a_batch_whose_flush_failed_is_never_recorded_and_the_next_run_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    """A disk that fails to sync the first batch (named at the next checkpoint) or the
    second (in the background): the collection stops with one clear error, no record names
    a file that is not there (a record without its file would read as a deletion on the
    device and delete the item on the server), and the next run downloads what is missing."""
    from davsync.sources import vdir as vdir_module

    rig = Rig(tmp_path)
    for n in range(2500):
        rig.remote.put_raw(f"/u/c/{n}.vcf", vcard(f"uid-{n}", f"Person {n}"))
    calls = 0
    real = vdir_module.sync_files

    def failing_sync(folder: Path, paths: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == failing:
            raise OSError(5, "Input/output error")
        real(folder, paths)

    monkeypatch.setattr(vdir_module, "sync_files", failing_sync)
    # The batches' files are synced where this process's patch reaches: on a thread, not in
    # the helper process (`in_helper` itself is tested in test_fsutil).
    monkeypatch.setattr(vdir_module, "in_helper", partial(in_background, "davsync-test"))
    report = rig.sync()
    assert [e["reason"] for e in report.errors] == [
        "cannot sync the device folder to disk (Input/output error); the files written "
        "since its last sync were not recorded and are written again next run. Check the disk"]
    recorded = rig.store.items("c")
    assert all((rig.dir / r.filename).is_file() for r in recorded.values() if r.filename)
    assert len(recorded) < 2500
    monkeypatch.setattr(vdir_module, "sync_files", real)
    assert rig.sync().errors == []
    assert len(rig.remote.items) == 2500 and rig.device() == rig.server()
    assert len(rig.store.items("c")) == 2500


class EditedBeforeFlushVdir(VdirSource):
    """A vdir whose user saves every staged file again just before the sync makes it durable."""

    def _take_batch(self) -> _Batch:
        for staged in self._staged:
            target = self.path / staged.name
            if target.exists():
                target.write_bytes(target.read_bytes().replace(b"FN:", b"FN:Edited "))
                os.utime(target, ns=(1, 1))
        return super()._take_batch()


def test_a_uid_repair_is_durable_before_its_item_goes_up(tmp_path: Path) -> None:
    """A UID written back into a device file must be on the device before the item is
    uploaded under that UID; a repair that could not be completed uploads nothing."""
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard(None, "Anna"))
    report = rig.sync(EditedBeforeFlushVdir(rig.dir, "contacts"))
    assert [e["reason"] for e in report.errors] == [
        f"{rig.dir / 'a.vcf'} changed while syncing; left untouched"]
    assert rig.server() == {} and rig.store.items("c") == {}
    assert b"UID:" not in (rig.dir / "a.vcf").read_bytes()
    rig.sync()
    assert list(rig.device().values()) == ["Edited Anna"] and rig.device() == rig.server()
