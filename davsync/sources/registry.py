"""Which device store a `[device]` type names: type -> (the kinds it holds, where its class is).

Adding a store is one module in `davsync.sources` and one line here; it must pass the shared
contract tests (tests/unit/test_source_contract.py). Classes are named as "module:Class" and
imported on first use, so a no-op run over vdirs imports no converter (icalendar, vobject).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from davsync.core.kinds import Kind


@dataclass(frozen=True)
class StoreType:
    """A type's classes ("module:Class", built as Class(path, kind)) for the forms it has: one
    file, and/or a folder of one-item files. A type with both (`mozcontacts-json`) is the file
    form at a path with a suffix (`contacts.json`), the folder form at any other path."""

    kinds: frozenset[Kind]
    file: str | None = None
    folder: str | None = None

    def is_folder(self, path: Path) -> bool:
        """Whether the store at `path` is the folder form (decided by the name alone, so a
        path that is the wrong shape is reported, not taken for the other form)."""
        if self.file is None or self.folder is None:
            return self.folder is not None
        return not path.suffix


_BOTH: Final = frozenset[Kind]({"contacts", "calendars"})
_CONTACTS: Final = frozenset[Kind]({"contacts"})

STORES: Final[dict[str, StoreType]] = {
    "vdir": StoreType(_BOTH, folder="davsync.sources.vdir:VdirSource"),
    "singlefile": StoreType(_BOTH, file="davsync.sources.singlefile:SingleFileSource"),
    "mozcontacts-json": StoreType(
        _CONTACTS, file="davsync.sources.mozcontacts:MozContactsSource",
        folder="davsync.sources.mozcontacts:MozContactsFolderSource"),
    "google-csv": StoreType(_CONTACTS, file="davsync.sources.google_csv:GoogleCsvSource"),
}


def store_types(kind: Kind) -> list[str]:
    """The type names a store of `kind` may have, in the registry's order."""
    return [name for name, store in STORES.items() if kind in store.kinds]


def open_store(store_type: str, path: Path, kind: Kind) -> Any:
    """The device store of `store_type` at `path` (a `davsync.sync.ports.Source`; typed Any
    here because the port lives in a layer above). ValueError for a type or kind the
    registry does not have: the config schema refuses those before any run."""
    store = STORES.get(store_type)
    if store is None or kind not in store.kinds:
        raise ValueError(f"no {kind} store of type {store_type!r}")
    where = store.folder if store.is_folder(path) else store.file
    assert where is not None
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)(path, kind)
