"""The pure side of `collections = ...`: folder names, the pairing plan, metadata merges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from davsync.config import load_config
from davsync.core.collections import (
    MAX_FOLDER_CHARS,
    Gone,
    MetaMerge,
    Pair,
    ServerCollection,
    assign_folders,
    folder_name,
    merge_meta,
    meta_value,
    plan_collections,
)
from davsync.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("work", "work"),
        ("../x", "_x"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("..", "collection"),
        (".", "collection"),
        ("", "collection"),
        (".hidden", "hidden"),
        ("ctl\x01\x1bname\x7f", "ctl__name_"),
        ("  spaced  ", "spaced"),
        ("Familie Müller", "Familie Müller"),
        ("rtl\u202eevil", "rtl_evil"),
    ],
)
def test_folder_name_is_safe(name: str, folder: str) -> None:
    assert folder_name(name) == folder


def test_a_long_name_is_cut_with_a_digest_that_keeps_two_long_names_apart() -> None:
    a, b = folder_name("x" * 300 + "a"), folder_name("x" * 300 + "b")
    assert len(a) == len(b) == MAX_FOLDER_CHARS and a != b
    assert a.startswith("x" * 91 + "-")


@given(st.text())
def test_any_name_gives_one_plain_folder_name(name: str) -> None:
    folder = folder_name(name)
    assert folder and "/" not in folder and "\\" not in folder and "\x00" not in folder
    assert not folder.startswith(".") and len(folder) <= MAX_FOLDER_CHARS
    assert folder_name(folder) == folder  # a folder name maps to itself: device-made ones


def test_folders_are_collision_free_and_stable() -> None:
    assert assign_folders(["a/b", "a_b", "A_B"], {}) == {"A_B": "A_B", "a/b": "a_b-2",
                                                         "a_b": "a_b-3"}
    # a pairing made before keeps its folder, whatever appears later
    assert assign_folders(["a/b", "a_b"], {"a_b": "a_b"}) == {"a_b": "a_b", "a/b": "a_b-2"}
    assert assign_folders(["new"], {}, reserved=["New"]) == {"new": "new-2"}


def _server(*names: str) -> list[ServerCollection]:
    return [ServerCollection(n, f"{n}/") for n in names]


def test_plan_all_pairs_every_server_collection_and_creates_new_device_folders() -> None:
    plan = plan_collections(_server("family", "work"), {"work", "club", "bad name.."},
                            {"work": "work"}, None)
    assert plan.pairs == (
        Pair("family", "family", "family/", new_folder=True),
        Pair("work", "work", "work/"),
        Pair("bad name..", "bad name..", None),
        Pair("club", "club", None),
    )
    assert plan.gone == () and plan.forget == () and plan.missing == ()


def test_plan_reports_a_vanished_collection_and_never_reuses_its_folder() -> None:
    plan = plan_collections(_server("family"), {"family", "work"},
                            {"family": "family", "work": "work"}, None)
    assert plan.gone == (Gone("work", "work"),)
    assert [p.name for p in plan.pairs] == ["family"]  # "work" is not created again
    # its folder moved away too: the state is forgotten
    plan = plan_collections(_server("family"), {"family"},
                            {"family": "family", "work": "work"}, None)
    assert plan.gone == () and plan.forget == ("work",)


def test_plan_does_not_recreate_the_missing_folder_of_a_known_collection() -> None:
    plan = plan_collections(_server("work"), set(), {"work": "work"}, None)
    assert plan.pairs == (Pair("work", "work", "work/", new_folder=False),)


def test_plan_list_names_what_exists() -> None:
    plan = plan_collections(_server("family", "work"), {"club"}, {}, ["family", "nope"])
    assert plan.pairs == (Pair("family", "family", "family/", new_folder=True),)
    assert plan.missing == ("nope",)  # and "club" is not created: a list names what exists
    plan = plan_collections(_server("family"), set(), {}, ["family", "nope"], create=True)
    assert plan.pairs[-1] == Pair("nope", "nope", None, new_folder=True)
    assert plan.missing == ()


def test_plan_a_new_server_collection_does_not_take_a_vanished_ones_folder() -> None:
    plan = plan_collections(_server("a/b"), {"a_b"}, {"gone": "a_b"}, None)
    assert plan.pairs == (Pair("a/b", "a_b-2", "a/b/", new_folder=True),)
    assert plan.gone == (Gone("gone", "a_b"),)


@pytest.mark.parametrize(
    ("device", "server", "synced", "merged"),
    [
        ("A", "A", None, MetaMerge("A")),
        (None, "S", None, MetaMerge("S", write_device=True)),
        ("D", None, None, MetaMerge("D", write_server=True)),
        ("old", "S", "old", MetaMerge("S", write_device=True)),
        ("D", "old", "old", MetaMerge("D", write_server=True)),
        ("D", "S", None, MetaMerge("S", write_device=True)),  # first pairing: the server's
        ("D", "S", "old", MetaMerge("S", write_device=True, conflict=True)),
        (None, None, "old", MetaMerge(None)),
    ],
)
def test_merge_meta_the_side_that_changed_wins(
    device: str | None, server: str | None, synced: str | None, merged: MetaMerge,
) -> None:
    assert merge_meta(device, server, synced) == merged


def test_meta_value_is_one_clean_line() -> None:
    assert meta_value("Work\n") == "Work"
    assert meta_value("../evil\nsecond\x00") == "../evil"
    assert meta_value("a\x1bb\u200bc") == "abc"
    assert meta_value("  \n") is None and meta_value(None) is None
    assert len(meta_value("x" * 5000) or "") == 1000


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('contacts = { type = "singlefile", path = "x.vcf", collections = "all" }',
         '[device] [contacts] collections: needs type = "vdir"'),
        ('contacts = { type = "vdir", path = "x", collections = [] }',
         "[device] [contacts] collections: lists no collection"),
        ('calendars = { type = "vdir", path = "x", collections = ["a", "a"] }',
         "[device] [calendars] collections: names 'a' twice"),
        ('calendars = { type = "vdir", path = "x", collections = "some" }',
         '[device] [calendars] collections: must be "all" or a list of collection names'),
    ],
)
def test_collections_config_errors_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[device]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)


def test_collections_config_forms(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[device]\ncontacts = { type = "vdir", path = "c", collections = "all" }\n'
                    'calendars = { type = "vdir", path = "k", collections = ["a", "b"] }\n')
    device = load_config(path).device
    assert device.collections("contacts") == "all" and device.contacts == tmp_path / "c"
    assert device.collections("calendars") == ("a", "b")
    path.write_text('[device]\ncontacts = "c"\n')
    assert load_config(path).device.collections("contacts") is None


def test_the_daemon_watches_the_parent_of_every_collection(tmp_path: Path) -> None:
    from davsync.app.daemon import configured_folders

    path = tmp_path / "c.toml"
    path.write_text('[server]\nurl = "http://x/"\nusername = "u"\n'
                    '[device]\ncontacts = { type = "vdir", path = "c", collections = "all" }\n'
                    'calendars = "k"\n')
    assert configured_folders(load_config(path)) == [tmp_path / "k", tmp_path / "c"]
