"""The contract every device store meets (`davsync.sync.ports.Source`), run against each store
in `davsync.sources.registry` for each kind it holds (vdirsyncer's StorageTests as the model).

A new store passes this class by being registered: nothing here names a store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from davsync.core.item import parse_item
from davsync.core.kinds import Kind
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing, StoreUnavailable
from davsync.sources.registry import STORES, open_store

SUFFIX = {("singlefile", "contacts"): ".vcf", ("singlefile", "calendars"): ".ics",
          ("mozcontacts-json", "contacts"): ".json", ("google-csv", "contacts"): ".csv"}
# A store holding two good items and, between them, one record it cannot convert (UID "bad"),
# where the store's format can hold such a record (a vdir's unparseable file is the engine's
# to report).
BROKEN = {
    ("singlefile", "contacts"): b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\n"
                                b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bad\r\nFN:B\r\n"
                                b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:C\r\nEND:VCARD\r\n",
    ("singlefile", "calendars"):
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
        b"BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240102T100000Z\r\nSUMMARY:A\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:bad\r\nSUMMARY:B\r\nthis line has no colon\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20240103T100000Z\r\nSUMMARY:C\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n",
    ("mozcontacts-json", "contacts"): b'[{"id": "a"}, {"id": "bad", "tel": 1}, {"id": "c"}]',
    ("google-csv", "contacts"): b"First Name,Photo,UID\r\nA,,a\r\nB,\x01,bad\r\nC,,c\r\n",
}
# (type, kind, folder form?) for every form of every store in the registry.
CASES = [(t, k, folder) for t, store in STORES.items() for k in sorted(store.kinds)
         for folder in (False, True) if (store.folder if folder else store.file)]

Make = Callable[[], Any]


def card(uid: str, given: str = "Ann", family: str = "Lee") -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{given} {family}\r\n"
            f"N:{family};{given};;;\r\nEMAIL;TYPE=home:{given.lower()}@example.org\r\n"
            "END:VCARD\r\n").encode()


def event(uid: str, given: str = "Ann", family: str = "Lee") -> bytes:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\n"
            f"SUMMARY:{given} {family}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


Case = tuple[str, Kind, bool]


@pytest.fixture(params=CASES, ids=[f"{t}-{k}" + ("-folder" * f) for t, k, f in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def kind(case: Case) -> Kind:
    return case[1]


@pytest.fixture
def path(case: Case, tmp_path: Path) -> Path:
    suffix = "" if case[2] else SUFFIX.get(case[:2], "")
    return tmp_path / f"store{suffix}"


@pytest.fixture
def make(case: Case, path: Path) -> Make:
    """A new store object over the same path (a later run sees the store this way)."""
    return lambda: open_store(case[0], path, case[1])


@pytest.fixture
def store(make: Make) -> Any:
    store = make()
    store.create_store()
    return store


def item(kind: Kind, uid: str, given: str = "Ann", family: str = "Lee") -> bytes:
    return (card if kind == "contacts" else event)(uid, given, family)


def uid_of(kind: Kind, data: bytes) -> str | None:
    return parse_item(data, kind).uid


def test_a_missing_store_is_never_an_empty_one(make: Make) -> None:
    with pytest.raises(StoreMissing):
        make().scan()


def test_create_store_makes_an_empty_store(store: Any, make: Make) -> None:
    assert store.scan() == {}
    make().create_store()  # again: harmless, keeps what is there
    assert make().scan() == {}


def test_create_then_scan_and_read(store: Any, kind: Kind) -> None:
    name, sig = store.create("uid-1", item(kind, "uid-1"))
    assert store.scan() == {name: sig}
    data = store.read(name)
    assert uid_of(kind, data) == "uid-1"
    assert b"Ann Lee" in data


def test_a_new_store_object_sees_the_same_names_and_sigs(store: Any, make: Make,
                                                          kind: Kind) -> None:
    for n in range(3):
        store.create(f"uid-{n}", item(kind, f"uid-{n}", given=f"P{n}"))
    store.flush()
    scan = store.scan()
    assert len(scan) == 3
    again = make()
    assert again.scan() == scan
    assert {uid_of(kind, again.read(name)) for name in scan} == {"uid-0", "uid-1", "uid-2"}


def test_create_never_replaces_an_existing_item(store: Any, kind: Kind) -> None:
    first, _ = store.create("same", item(kind, "same"))
    try:
        second, _ = store.create("same", item(kind, "same", given="Bob"))
    except SourceError:
        second = first
    assert b"Ann Lee" in store.read(first)
    assert second == first or b"Bob Lee" in store.read(second)


def test_write_with_the_current_sig_replaces_the_item(store: Any, kind: Kind) -> None:
    name, sig = store.create("uid-1", item(kind, "uid-1"))
    new_sig = store.write(name, item(kind, "uid-1", given="Eve"), sig)
    assert store.scan() == {name: new_sig}
    assert b"Eve Lee" in store.read(name)


def test_a_stale_sig_is_refused_and_nothing_changes(store: Any, kind: Kind) -> None:
    name, sig = store.create("uid-1", item(kind, "uid-1"))
    new_sig = store.write(name, item(kind, "uid-1", given="Eve"), sig)
    with pytest.raises(SourceError, match="changed while syncing"):
        store.write(name, item(kind, "uid-1", given="Zed"), sig)
    with pytest.raises(SourceError, match="changed while syncing"):
        store.delete(name, sig)
    assert store.scan() == {name: new_sig}
    assert b"Eve Lee" in store.read(name)


def test_delete(store: Any, kind: Kind) -> None:
    name, sig = store.create("uid-1", item(kind, "uid-1"))
    keep, keep_sig = store.create("uid-2", item(kind, "uid-2", given="Bob"))
    store.delete(name, sig)
    assert store.scan() == {keep: keep_sig}
    store.delete(name, sig)  # already gone: done
    with pytest.raises(SourceError):
        store.read(name)


def test_changing_one_item_keeps_the_others_sigs(store: Any, kind: Kind) -> None:
    names = [store.create(f"uid-{n}", item(kind, f"uid-{n}", given=f"P{n}"))
             for n in range(3)]
    before = store.scan()
    (first, sig), *others = names
    store.write(first, item(kind, "uid-0", given="Changed"), sig)
    after = store.scan()
    assert {n: after[n] for n, _ in others} == {n: before[n] for n, _ in others}


def test_scanning_twice_gives_the_same_sigs(store: Any, kind: Kind) -> None:
    store.create("uid-1", item(kind, "uid-1"))
    assert store.scan() == store.scan()


@pytest.mark.parametrize("name", ["../escape.vcf", "/etc/passwd", "..", "", "a\0b"])
def test_unsafe_or_unknown_names_are_refused(store: Any, name: str) -> None:
    with pytest.raises(SourceError):
        store.read(name)


def test_max_bytes_refuses_a_large_item(store: Any, kind: Kind) -> None:
    name, _ = store.create("uid-1", item(kind, "uid-1"))
    with pytest.raises(ItemTooLarge):
        store.read(name, max_bytes=10)


def test_writes_are_atomic_a_failed_write_keeps_the_old_item(
    store: Any, kind: Kind, path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, sig = store.create("uid-1", item(kind, "uid-1"))
    assert store.flush() == {}
    folder = path if path.is_dir() else path.parent
    before = sorted(os.listdir(folder))

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("davsync.fsutil.os.replace", refuse)
    try:  # a store may complete its writes only at flush: it then names the failed one
        store.write(name, item(kind, "uid-1", given="Eve"), sig)
        failed = store.flush()
    except SourceError as exc:
        failed = {name: str(exc)}
    assert "No space left" in failed[name]
    monkeypatch.undo()
    assert sorted(os.listdir(folder)) == before  # no temporary file left behind
    assert b"Ann Lee" in store.read(name)
    assert store.scan() == {name: sig}


def test_flush_after_changes(store: Any, kind: Kind, make: Make) -> None:
    name, _ = store.create("uid-1", item(kind, "uid-1"))
    store.flush()
    store.flush()
    assert name in make().scan()


def test_a_store_of_the_wrong_shape_is_unavailable(path: Path, make: Make) -> None:
    if path.suffix:
        path.mkdir()  # a folder where a file is expected
    else:
        path.write_text("a file where a folder is expected")
    with pytest.raises(StoreUnavailable):
        make().scan()


def test_location_names_the_store(make: Make, path: Path) -> None:
    assert make().location == str(path)


# Only the stores whose file holds records of their own (a vdir's or a folder store's record
# is its own file, reported as an unreadable file instead).
RECORD_CASES = [c for c in CASES if not c[2] and c[:2] in BROKEN]


@pytest.mark.parametrize("case", RECORD_CASES, indirect=True,
                         ids=[f"{t}-{k}" for t, k, _ in RECORD_CASES])
def test_a_record_it_cannot_convert_is_skipped_named_and_kept(
    case: Case, path: Path, make: Make,
) -> None:
    path.write_bytes(BROKEN[case[:2]])
    store = make()
    scan = store.scan()
    assert sorted(scan) == ["a", "c"]
    assert list(store.skipped) == ["bad"] and store.skipped["bad"].startswith("record 2")
    assert not store.partial
    store.delete("a", scan["a"])
    with pytest.raises(SourceError):
        store.delete("bad", None)
    store.flush()
    again = make()
    assert list(again.scan()) == ["c"] and list(again.skipped) == ["bad"]


def test_a_clean_scan_is_complete(store: Any, kind: Kind) -> None:
    store.create("uid-1", item(kind, "uid-1"))
    store.scan()
    assert store.skipped == {} and store.partial is False
    assert isinstance(store.writes_whole, bool)
