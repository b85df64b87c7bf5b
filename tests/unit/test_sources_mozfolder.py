"""The folder form of `mozcontacts-json`: one JSON file per contact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from davsync.config.loader import DeviceConfig
from davsync.errors import ConfigError
from davsync.sources.base import SourceError
from davsync.sources.mozcontacts import MozContactsFolderSource, MozContactsSource
from davsync.sources.registry import open_store
from tests.unit.rig import Rig, vcard


def card(uid: str, fn: str = "Ann Lee") -> bytes:
    return vcard(uid, fn)


def test_the_path_says_which_form(tmp_path: Path) -> None:
    assert isinstance(open_store("mozcontacts-json", tmp_path / "phone", "contacts"),
                      MozContactsFolderSource)
    assert isinstance(open_store("mozcontacts-json", tmp_path / "c.json", "contacts"),
                      MozContactsSource)
    (tmp_path / "phone").mkdir()
    DeviceConfig(tmp_path / "phone", None, contacts_type="mozcontacts-json").folders()
    (tmp_path / "c.json").mkdir()
    with pytest.raises(ConfigError, match="is a folder; a mozcontacts-json store is one file"):
        DeviceConfig(tmp_path / "c.json", None, contacts_type="mozcontacts-json").folders()


def test_new_files_are_named_safely_from_the_id(tmp_path: Path) -> None:
    store = MozContactsFolderSource(tmp_path, "contacts")
    name, _ = store.create("ann-1", card("ann-1"))
    assert name == "ann-1.json"
    assert store.flush() == {}  # a folder store names its files at the flush, as a vdir does
    assert json.loads((tmp_path / name).read_text())["id"] == "ann-1"
    evil, _ = store.create("../../etc/passwd", card("../../etc/passwd", "Eve"))
    assert store.flush() == {}
    assert "/" not in evil and evil.endswith(".json") and (tmp_path / evil).is_file()
    assert json.loads((tmp_path / evil).read_text())["id"] == "../../etc/passwd"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, evil])


def test_a_deletion_removes_that_one_file(tmp_path: Path) -> None:
    store = MozContactsFolderSource(tmp_path, "contacts")
    a, a_sig = store.create("a", card("a"))
    b, _ = store.create("b", card("b", "Bob Roe"))
    store.delete(a, a_sig)
    assert store.flush() == {}
    assert [p.name for p in tmp_path.iterdir()] == [b]


def test_a_contact_without_id_keeps_its_uid_when_edited(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"name": ["Ann"]}')
    store = MozContactsFolderSource(tmp_path, "contacts")
    first = store.read("x.json")
    (tmp_path / "x.json").write_text('{"name": ["Ann Lee"]}')
    second = store.read("x.json")
    uid = [line for line in first.decode().splitlines() if line.startswith("UID:")]
    assert uid and uid[0].encode() in second and b"Ann Lee" in second


def test_a_one_contact_array_is_read_and_written_back_as_an_array(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"id": "a", "name": ["Ann"]}]')
    store = MozContactsFolderSource(tmp_path, "contacts")
    sig = store.scan()["a.json"]
    assert b"FN:Ann" in store.read("a.json")
    store.write("a.json", card("a", "Ann Lee"), sig)
    assert store.flush() == {}
    assert json.loads((tmp_path / "a.json").read_text())[0]["name"] == ["Ann Lee"]


def test_a_file_that_cannot_be_converted_is_refused_when_read(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('{"id": "b", "tel": [{"value": 5}]}')
    (tmp_path / "c.json").write_text('[{"id": "c"}, {"id": "d"}]')
    store = MozContactsFolderSource(tmp_path, "contacts")
    with pytest.raises(SourceError, match=r"tel 1\.value is a int, not text; not synced"):
        store.read("b.json")
    with pytest.raises(SourceError, match="holds 2 contacts, not one"):
        store.read("c.json")


def test_the_sync_keeps_a_broken_file_on_both_sides(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    folder = rig.dir / "phone"
    folder.mkdir()
    (folder / "a.json").write_text('{"id": "a", "name": ["Ann"]}')
    (folder / "b.json").write_text('{"id": "b", "name": ["Bob"]}')
    rig.sync(MozContactsFolderSource(folder, "contacts"))
    assert sorted(rig.server().values()) == ["Ann", "Bob"]
    broken = '{"id": "b", "name": ["Bob"], "tel": [{"value": 5}]}'
    (folder / "b.json").write_text(broken)
    rig.remote.put_raw("/u/c/c.vcf", vcard("c", "Cy"))
    report = rig.sync(MozContactsFolderSource(folder, "contacts"))
    assert [e["item"] for e in report.errors] == [f"{folder}/b.json"]
    assert sorted(rig.server().values()) == ["Ann", "Bob", "Cy"]
    assert (folder / "b.json").read_text() == broken
    assert json.loads((folder / "c.json").read_text())["name"] == ["Cy"]
