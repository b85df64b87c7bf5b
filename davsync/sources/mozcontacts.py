"""A Firefox OS / KaiOS contacts export over `core.convert.mozcontact`: one JSON array of
mozContact objects, or a folder of one-contact JSON files. A contact's `id` is its UID (one
without gets a stable derived UID, written back as its `id` on the next rewrite)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from davsync.core.convert import ConvertError, Unconverted, derived_uid, mozcontact
from davsync.core.kinds import Kind
from davsync.core.vtext import ParseError
from davsync.sources.base import SourceError
from davsync.sources.onefile import Entry, OneFileSource
from davsync.sources.vdir import VdirSource


class MozContactsSource(OneFileSource):
    """A record that cannot be converted is kept as its JSON object, in its place."""

    what = "contacts export (JSON)"

    def split(self, data: bytes) -> tuple[list[Entry], Any]:
        return mozcontact.export_records(data), None

    def join(self, entries: list[Entry], rest: Any) -> bytes:
        records = [e if isinstance(e, Unconverted) else mozcontact.from_vcard(e, str(i + 1))
                   for i, e in enumerate(entries)]
        return mozcontact.serialize_records(records).encode("utf-8")


class MozContactsFolderSource(VdirSource):
    """A folder of mozContact JSON files, one contact each (a JSON object, or an array of
    one), kept like a vdir: items are files named from the contact's `id` (`name_for`:
    sanitised, never a path), sigs are the files' stats, writes are atomic per file, and a
    deletion removes that one file. A file that cannot be converted is reported by the sync
    and kept untouched, as an unparseable vdir file is. A contact without `id` is known by a
    UID derived from its file name, so editing it keeps its UID."""

    def __init__(self, path: Path, kind: Kind) -> None:
        super().__init__(path, kind)
        self.suffix = ".json"

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        data = super().read(name, max_bytes)
        try:
            value = _one_contact(json_value(data))
            contact = mozcontact.from_json(value)
            uid = contact.id or derived_uid("mozcontact-file", name)
            return mozcontact.to_vcard(contact, uid=uid, record=name).encode("utf-8")
        except ParseError as exc:
            raise SourceError(f"{self.path / name}: {exc}; not synced, and kept as it is. "
                              "Correct it (or the app that wrote it) and sync again") from None

    def create(self, uid: str, data: bytes) -> tuple[str, str]:
        return super().create(uid, self._json(uid, data, as_array=False))

    def write(self, name: str, data: bytes, expect_sig: str | None) -> str:
        return super().write(name, self._json(name, data, self._is_array(name)), expect_sig)

    def _json(self, name: str, data: bytes, as_array: bool) -> bytes:
        """The contact file for vCard `data`, in the shape the file had (object or array)."""
        try:
            value = mozcontact.to_json(mozcontact.from_vcard(data.decode("utf-8"), name))
        except (ParseError, UnicodeDecodeError) as exc:
            raise SourceError(f"{self.path / name}: cannot store it: {exc}") from None
        text = json.dumps([value] if as_array else value, ensure_ascii=False, indent=1)
        return (text + "\n").encode("utf-8")

    def _is_array(self, name: str) -> bool:
        try:
            return super().read(name).lstrip().startswith(b"[")
        except SourceError:
            return False


def json_value(data: bytes) -> object:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConvertError("1", f"not JSON: {str(exc)[:200]}") from None


def _one_contact(value: object) -> object:
    """The contact a one-contact file holds: an object, or an array of exactly one."""
    if isinstance(value, list):
        if len(value) != 1:
            raise ConvertError("1", f"holds {len(value)} contacts, not one")
        return value[0]
    return value
