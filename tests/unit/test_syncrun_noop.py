"""The composition root's early "nothing to do" decision: it must say yes only when the
engine would do nothing either, and say no to anything that needs a look."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from davsync.app.sync import _RUN_MODULES, _import_while_waiting, _nothing_to_do
from davsync.core.synced import Synced, device_unchanged
from davsync.dav.api import Probe
from davsync.sources.vdir import VdirSource
from davsync.state.store import StateStore
from davsync.sync.values import SyncResult, Target
from tests.unit.rig import vcard

KEY = "contacts:contacts@http://dav.example/"


class AnsweredProbe:
    """What `EarlyProbe` offers `_nothing_to_do`: the marker of its answer, if usable."""

    def __init__(self, ctag: str | None, modified: str | None = None) -> None:
        self._probe = (Probe(ctag, None, modified, settled=True)
                       if ctag is not None or modified is not None else None)

    def probe(self) -> Probe | None:
        return self._probe

    def arrived(self) -> bool:
        return True


class LateProbe:
    """A probe whose answer arrives after `checks` looks."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    def arrived(self) -> bool:
        self.checks -= 1
        return self.checks < 0


@pytest.fixture
def synced(tmp_path: Path) -> tuple[StateStore, Target]:
    """A collection synced once: one device file, its record, the stored ctag "c1"."""
    folder = tmp_path / "contacts"
    folder.mkdir()
    (folder / "a.vcf").write_bytes(vcard("a", "Anna"))
    sig = VdirSource(folder, "contacts").scan()["a.vcf"]
    store = StateStore(tmp_path / "state.sqlite")
    store.save_collection(KEY, "contacts", "http://dav.example/u/contacts/")
    store.record(KEY, Synced("a", "a.vcf", sig, "/u/contacts/a.vcf", '"e1"', "h"), None)
    store.save_marks(KEY, '"c1"', "token-1")
    target = Target("contacts", "contacts", folder, KEY, "http://dav.example/u/contacts/")
    target.early = AnsweredProbe('"c1"')  # type: ignore[assignment]
    return store, target


def test_unchanged_on_both_sides_ends_the_run_and_records_it(
    synced: tuple[StateStore, Target],
) -> None:
    store, target = synced
    result = SyncResult()
    assert _nothing_to_do(store, [target], result)
    assert result.collections["contacts"].as_json()["errors"] == []
    state = store.collection(KEY)
    assert state is not None and state.last_sync is not None


@pytest.mark.parametrize("change", ["server ctag", "no ctag", "pending", "edited", "added",
                                    "deleted", "no early probe"])
def test_anything_to_look_at_goes_the_whole_way(
    synced: tuple[StateStore, Target], change: str
) -> None:
    store, target = synced
    if change == "server ctag":
        target.early = AnsweredProbe('"c2"')  # type: ignore[assignment]
    elif change == "no ctag":
        target.early = AnsweredProbe(None)  # type: ignore[assignment]
    elif change == "pending":
        store.set_pending(KEY, {"/u/contacts/broken.vcf"})
    elif change == "edited":
        (target.path / "a.vcf").write_bytes(vcard("a", "Anna Maria, longer now"))
    elif change == "added":
        (target.path / "b.vcf").write_bytes(b"not a vCard at all")
    elif change == "deleted":
        (target.path / "a.vcf").unlink()
    else:
        target.early = None
    result = SyncResult()
    assert not _nothing_to_do(store, [target], result)
    assert result.collections == {}


def test_device_unchanged_compares_names_and_signatures_both_ways() -> None:
    rec = Synced("a", "a.vcf", "sig-a", "/a.vcf", None, "h")
    server_only = Synced("b", None, None, "/b.vcf", None, "h")  # never on this device
    assert device_unchanged({"a.vcf": "sig-a"}, [rec, server_only])
    assert not device_unchanged({"a.vcf": "sig-other"}, [rec])
    assert not device_unchanged({"a.vcf": "sig-a", "new.vcf": "x"}, [rec])
    assert not device_unchanged({}, [rec])


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The modules `_import_while_waiting` imports, in order (each really imported)."""
    seen: list[str] = []
    real = importlib.import_module

    def recording(name: str) -> object:
        seen.append(name)
        return real(name)

    monkeypatch.setattr("davsync.app.sync.importlib.import_module", recording)
    return seen


def test_answers_already_in_import_nothing(imports: list[str]) -> None:
    _import_while_waiting([AnsweredProbe(None), AnsweredProbe(None)])  # type: ignore[list-item]
    assert imports == []


def test_the_run_modules_are_imported_one_at_a_time_until_every_answer_is_in(
    imports: list[str],
) -> None:
    _import_while_waiting([AnsweredProbe(None), LateProbe(2)])  # type: ignore[list-item]
    assert imports == list(_RUN_MODULES[:2])


def test_a_long_wait_imports_every_run_module(imports: list[str]) -> None:
    _import_while_waiting([LateProbe(100)])  # type: ignore[list-item]
    assert imports == list(_RUN_MODULES)


MODIFIED = "Tue, 01 Dec 2026 00:26:45 GMT"


@pytest.mark.parametrize(("probe", "stored", "age", "no_op"), [
    (MODIFIED, MODIFIED, 10, True),  # the same settled time, stored a moment ago
    ("Tue, 01 Dec 2026 00:26:47 GMT", MODIFIED, 10, False),  # it moved: a change
    (MODIFIED, None, 10, False),  # nothing stored (the last one was not settled)
    (MODIFIED, MODIFIED, 3 * 3600, False),  # stored too long ago to be trusted alone
])
def test_a_getlastmodified_mark_says_unchanged_only_while_fresh(
    synced: tuple[StateStore, Target], probe: str, stored: str | None, age: int, no_op: bool,
) -> None:
    store, target = synced
    store.save_marks(KEY, None, "token-1", stored)
    store.db.execute("UPDATE collections SET modified_at = modified_at - ?", (age,))
    target.early = AnsweredProbe(None, probe)  # type: ignore[assignment]
    assert _nothing_to_do(store, [target], SyncResult()) is no_op
