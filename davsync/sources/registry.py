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
    kinds: frozenset[Kind]
    where: str  # "module:Class"; the class is built as Class(path, kind)
    folder: bool  # the path is a folder (else one file)


_BOTH: Final = frozenset[Kind]({"contacts", "calendars"})
_CONTACTS: Final = frozenset[Kind]({"contacts"})

STORES: Final[dict[str, StoreType]] = {
    "vdir": StoreType(_BOTH, "davsync.sources.vdir:VdirSource", folder=True),
    "singlefile": StoreType(_BOTH, "davsync.sources.singlefile:SingleFileSource", folder=False),
    "mozcontacts-json": StoreType(_CONTACTS, "davsync.sources.mozcontacts:MozContactsSource",
                                  folder=False),
    "google-csv": StoreType(_CONTACTS, "davsync.sources.google_csv:GoogleCsvSource",
                            folder=False),
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
    module, _, name = store.where.partition(":")
    return getattr(importlib.import_module(module), name)(path, kind)
