"""Which device store a collection was synced with, across a change of `[device]` layout.

The single form (`contacts = "/path"`) and `collections = ...` (`<parent>/<name>`) of one
collection share its state key, so a user who switches layout would otherwise have the sync
read the old store's items as "all deleted on the device" in the new, empty folder. The state
remembers where each collection's store is (`CollectionMeta.folder`: the folder's name under
the parent, or the whole path of a single-form store); when that is no longer where the
config puts it, the collection is re-paired: its item state is dropped (`reset_collection`),
so the next sync merges both sides afresh and deletes nothing, and the user is told once.

Imported before httpx by the composition root (the single form is adopted before the
early change probes): it uses only the state store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from davsync.state.store import CollectionMeta

if TYPE_CHECKING:
    from davsync.core.kinds import Kind
    from davsync.state.store import StateStore

log = logging.getLogger(__name__)


def is_single(meta: CollectionMeta) -> bool:
    """Whether `meta` is of a collection synced the single way (`folder` is then a path)."""
    return os.path.isabs(meta.folder)


def adopt_single(store: StateStore, key: str, kind: Kind, path: Path) -> None:
    """Remember the single-form store of `key`; re-pair it when `collections = ...` synced it
    before, in a folder under its former parent."""
    here = os.path.abspath(path)
    meta = store.meta(key)
    if meta is not None and meta.folder == here:
        return
    if meta is not None and not is_single(meta):
        _repair(store, key, kind, path,
                f"the folder {meta.folder!r} under its former `collections` parent folder")
    store.save_meta(key, CollectionMeta(here))


def adopt_collection(store: StateStore, key: str, kind: Kind, path: Path) -> None:
    """A collection paired with `path` under a `collections` parent for the first time: when
    the single form synced it before with another store, re-pair it."""
    meta = store.meta(key)
    if meta is not None and not is_single(meta):
        return  # paired the same way before: its folder is `meta.folder`
    if meta is not None and meta.folder == os.path.abspath(path):
        return  # the single form's store was this very folder
    _repair(store, key, kind, path, meta.folder if meta is not None else "its former store")


def _repair(store: StateStore, key: str, kind: Kind, path: Path, before: str) -> None:
    if not store.items(key):
        return  # nothing synced: nothing to take for deleted
    store.reset_collection(key)
    noun = "addressbook" if kind == "contacts" else "calendar"
    log.warning("%s: this %s was synced with %s until the [device] %s layout changed; it is "
                "now synced with %s: what the server has is downloaded into it and what it "
                "holds is uploaded, nothing is deleted on either side. If %s is another "
                "folder, it is no longer synced: remove it once %s holds what you expect",
                path, noun, before, kind, path, before, path)
