"""The engine over a store kept in one file (here a mozContact JSON export): a record that
cannot be converted is reported and kept on both sides, and a first sync of many items writes
the file once and survives a kill at the write or just after it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from davsync.sources import onefile
from davsync.sources.base import StoreUnavailable
from davsync.sources.mozcontacts import MozContactsSource
from davsync.state.store import StateStore
from davsync.sync.ledger import _RECORD_BATCH
from tests.unit.rig import Rig, vcard


def _export(rig: Rig, records: list[dict[str, Any]]) -> Path:
    path = rig.dir / "contacts.json"
    path.write_text(json.dumps(records))
    return path


def _store(path: Path) -> MozContactsSource:
    return MozContactsSource(path, "contacts")


def test_a_record_that_breaks_is_reported_kept_and_not_deleted(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    path = _export(rig, [{"id": "a", "name": ["Ann"]}, {"id": "b", "name": ["Bob"]},
                         {"name": ["Cy"]}])
    rig.sync(_store(path))
    assert sorted(rig.server().values()) == ["Ann", "Bob", "Cy"]
    broken = [{"id": "a", "name": ["Ann"]}, {"id": "b", "name": ["Bob"], "tel": [{"value": 5}]},
              {"name": ["Cy"], "email": 7}, {"id": "d", "name": ["Dee"]}]
    path.write_text(json.dumps(broken))
    report = rig.sync(_store(path))
    reasons = {e["item"]: e["reason"] for e in report.errors}
    assert reasons[f"{path}/b"].startswith("record 2 (Bob): tel 1.value is a int, not text")
    assert "record 3 (Cy): email is not a list" in reasons[f"{path}/record 3 (Cy)"]
    assert sorted(rig.server().values()) == ["Ann", "Bob", "Cy", "Dee"]  # nothing deleted
    assert json.loads(path.read_text()) == broken  # nothing written over
    rig.remote.put_raw("/u/c/e.vcf", vcard("e", "Eve"))
    rig.sync(_store(path))  # a rewrite keeps both bad records in their places
    assert json.loads(path.read_text())[:4] == broken
    assert sorted(rig.server().values()) == ["Ann", "Bob", "Cy", "Dee", "Eve"]


def _many_on_server(rig: Rig, count: int) -> None:
    for n in range(count):
        rig.remote.put_raw(f"/u/c/{n}.vcf", vcard(f"uid-{n}", f"Person {n}"))


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    writes: list[Path] = []
    real = onefile.write_atomic

    def counting(target: Path, data: bytes, **kwargs: Any) -> None:
        writes.append(target)
        real(target, data, **kwargs)

    monkeypatch.setattr(onefile, "write_atomic", counting)
    return writes


def test_a_first_sync_of_many_writes_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(tmp_path)
    path = _export(rig, [])
    many = _RECORD_BATCH + 60  # more than a record batch and many download chunks (50)
    _many_on_server(rig, many)
    writes = _count_writes(monkeypatch)
    report = rig.sync(_store(path))
    assert report.errors == []
    assert writes == [path]
    assert len(json.loads(path.read_text())) == many
    assert len(rig.store.items("c")) == many
    again = rig.sync(_store(path))
    assert again.errors == [] and writes == [path]  # nothing left to write


class Killed(BaseException):
    """Stands in for kill -9: nothing after it runs."""


@pytest.mark.parametrize("where", ["at the write", "after the write, before the records"])
def test_a_kill_at_the_write_neither_loses_nor_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str,
) -> None:
    rig = Rig(tmp_path)
    path = _export(rig, [{"id": "mine", "name": ["Mine"]}])
    _many_on_server(rig, 120)

    def kill(*args: object, **kwargs: object) -> None:
        raise Killed

    target = (onefile, "write_atomic") if where == "at the write" else (StateStore, "upsert")
    with monkeypatch.context() as patch:
        patch.setattr(*target, kill)
        with pytest.raises(Killed):
            rig.sync(_store(path))
    rig.store = StateStore(tmp_path / "state.sqlite")  # the next run, a new process
    report = rig.sync(_store(path))
    assert report.errors == [] and report.conflicts == 0
    assert len(rig.remote.items) == 121 and len(json.loads(path.read_text())) == 121
    assert rig.sync(_store(path)).errors == []
    assert len(rig.remote.items) == 121 and len(json.loads(path.read_text())) == 121


def test_an_edit_to_the_file_during_the_run_is_kept_and_the_run_is_done_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(tmp_path)
    path = _export(rig, [{"id": "mine", "name": ["Mine"]}])
    _many_on_server(rig, 80)
    edited = [{"id": "mine", "name": ["Mine"]}, {"id": "late", "name": ["Added meanwhile"]}]
    real = rig.remote.multiget

    def user_edits_while_downloading(hrefs: Any) -> Any:
        for n, fetched in enumerate(real(hrefs)):
            if n == 60:  # after the first chunk (50) was applied in memory
                path.write_text(json.dumps(edited))
                os.utime(path, ns=(1, 1))  # another stat even within the clock's resolution
            yield fetched

    monkeypatch.setattr(rig.remote, "multiget", user_edits_while_downloading)
    report = rig.sync(_store(path))
    assert [e["reason"] for e in report.errors] == [
        "the device contacts export (JSON) changed on disk while syncing; this run's changes "
        "to it were not written, and the next sync makes them again"]
    assert json.loads(path.read_text()) == edited
    assert {rec.uid for rec in rig.store.items("c").values()} <= {"mine"}  # nothing recorded
    monkeypatch.undo()
    assert rig.sync(_store(path)).errors == []
    names = sorted(c["name"][0] for c in json.loads(path.read_text()))
    assert names == sorted(["Added meanwhile", "Mine", *(f"Person {n}" for n in range(80))])
    assert sorted(rig.server().values()) == names
    assert rig.sync(_store(path)).errors == []


def test_a_failed_flush_fails_every_later_one_until_the_next_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(tmp_path)
    path = _export(rig, [])
    store = _store(path)
    store.scan()
    store.create("a", vcard("a", "Ann"))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(onefile, "write_atomic", full)
        with pytest.raises(StoreUnavailable, match="No space left"):
            store.flush()
    store.create("b", vcard("b", "Bob"))
    with pytest.raises(StoreUnavailable, match="No space left"):  # "a" was never written
        store.flush()
    assert store.scan() == {} and json.loads(path.read_text()) == []


def test_start_flush_of_a_store_in_one_file_is_its_flush(tmp_path: Path) -> None:
    """The sync never asks a store that writes itself whole to begin a flush (it flushes it
    once per run), but one that is asked writes the file then, as `flush` would: the sync
    records what was written before an earlier `start_flush` once it returns."""
    rig = Rig(tmp_path)
    path = _export(rig, [])
    store = _store(path)
    store.scan()
    store.create("a", vcard("a", "Ann"))
    assert store.start_flush() == {}
    assert len(json.loads(path.read_text())) == 1 and "Ann" in path.read_text()
    assert len(store.scan()) == 1
