"""Which store a collection was synced with, across a change of [device] layout."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from davsync.core.synced import Synced
from davsync.state.store import CollectionMeta, StateStore
from davsync.sync.layout import adopt_collection, adopt_single

KEY = "contacts:family@http://dav.example/"


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state.sqlite")
    store.save_collection(KEY, "contacts", "http://dav.example/family/")
    store.record(KEY, Synced("a", "a.vcf", "sig", "/family/a.vcf", "e1", "h"), None)
    return store


def test_the_single_form_remembers_its_path_and_keeps_its_state(
        store: StateStore, tmp_path: Path) -> None:
    adopt_single(store, KEY, "contacts", tmp_path / "Contacts")
    adopt_single(store, KEY, "contacts", tmp_path / "Contacts")
    assert store.meta(KEY) == CollectionMeta(str(tmp_path / "Contacts"))
    assert list(store.items(KEY)) == ["a"]


def test_the_same_folder_in_the_collections_layout_keeps_the_state(
        store: StateStore, tmp_path: Path) -> None:
    adopt_single(store, KEY, "contacts", tmp_path / "contacts" / "family")
    adopt_collection(store, KEY, "contacts", tmp_path / "contacts" / "family")
    assert list(store.items(KEY)) == ["a"]


def test_another_folder_in_the_collections_layout_is_paired_afresh(
        store: StateStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    adopt_single(store, KEY, "contacts", tmp_path / "Contacts")
    with caplog.at_level(logging.WARNING):
        adopt_collection(store, KEY, "contacts", tmp_path / "contacts" / "family")
    assert store.items(KEY) == {}
    assert f"synced with {tmp_path / 'Contacts'} until the [device] contacts layout" in caplog.text


def test_back_to_the_single_form_is_paired_afresh(store: StateStore, tmp_path: Path) -> None:
    store.save_meta(KEY, CollectionMeta("family"))
    adopt_single(store, KEY, "contacts", tmp_path / "Contacts")
    assert store.items(KEY) == {}
    assert store.meta(KEY) == CollectionMeta(str(tmp_path / "Contacts"))


def test_a_collection_paired_before_keeps_its_state(store: StateStore, tmp_path: Path) -> None:
    store.save_meta(KEY, CollectionMeta("family"))
    adopt_collection(store, KEY, "contacts", tmp_path / "contacts" / "family")
    assert list(store.items(KEY)) == ["a"]
