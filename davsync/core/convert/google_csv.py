"""Google Contacts CSV <-> vCard.

A row is a mapping from column to cell, in the current (2023+) header spelling: the older one
(`Given Name`, `Group Membership`, `E-mail 1 - Type`, ...) is renamed on reading, and writing
uses the current spelling with only the columns in use, in a stable order. Empty cells are left
out, so two rows are equal when they hold the same data. A column without a vCard property
travels as `X-GOOGLE-CSV;X-COLUMN=<column>:<cell>`, so every cell comes back from the vCard.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from davsync.core.convert import ConvertError, Occurrences, Unconverted, derived_uid, record_name
from davsync.core.convert.vcard import (
    Line,
    Version,
    add_address,
    add_name,
    add_org,
    add_photo,
    add_text,
    first,
    named,
    new_card,
    read_card,
    serialize,
    type_params,
)
from davsync.core.vtext import ParseError

Row = dict[str, str]

OLD_NAMES = {
    "Given Name": "First Name", "Additional Name": "Middle Name", "Family Name": "Last Name",
    "Given Name Yomi": "Phonetic First Name", "Additional Name Yomi": "Phonetic Middle Name",
    "Family Name Yomi": "Phonetic Last Name", "Group Membership": "Labels",
    "Organization 1 - Name": "Organization Name", "Organization 1 - Title": "Organization Title",
    "Organization 1 - Department": "Organization Department",
}
SINGLES = ("Name", "First Name", "Middle Name", "Last Name", "Phonetic First Name",
           "Phonetic Middle Name", "Phonetic Last Name", "Name Prefix", "Name Suffix",
           "Nickname", "File As", "Organization Name", "Organization Title",
           "Organization Department", "Birthday", "Notes", "Photo", "Labels", "UID")
FAMILIES = {
    "E-mail": ("Label", "Value"), "Phone": ("Label", "Value"),
    "Address": ("Label", "Formatted", "Street", "City", "PO Box", "Region", "Postal Code",
                "Country", "Extended Address"),
    "Organization": ("Label", "Name", "Title", "Department"),
    "Relation": ("Label", "Value"), "Event": ("Label", "Value"), "Website": ("Label", "Value"),
    "IM": ("Label", "Service", "Value"), "Custom Field": ("Label", "Value"),
}
VALUE_FAMILIES = {"E-mail": "EMAIL", "Phone": "TEL", "Website": "URL"}
ADR_SUBS = ("PO Box", "Extended Address", "Street", "City", "Region", "Postal Code", "Country")
TEXTS = {"Nickname": "NICKNAME", "Notes": "NOTE", "Organization Title": "TITLE",
         "Phonetic First Name": "X-PHONETIC-FIRST-NAME",
         "Phonetic Middle Name": "X-PHONETIC-MIDDLE-NAME",
         "Phonetic Last Name": "X-PHONETIC-LAST-NAME"}
# Google's labels that vCard has TYPE values for; any other label is written as it is.
LABEL_TYPES = {"Home": ("home",), "Work": ("work",), "Mobile": ("cell",), "Other": ("other",),
               "Home Fax": ("home", "fax"), "Work Fax": ("work", "fax"), "Pager": ("pager",),
               "Main": ("main",)}
SEPARATOR = " ::: "
_FAMILY = re.compile(r"(.+?) (\d+) - (.+)")
_OLD_TYPE = re.compile(r"(.+ \d+) - Type")
_DATE = re.compile(r"(\d{4}|-)-\d{2}-\d{2}")
_MAPPED = frozenset({*TEXTS, "First Name", "Middle Name", "Last Name", "Name Prefix",
                     "Name Suffix", "Name", "Organization Name", "Organization Department",
                     "Labels", "Photo", "UID"})


# ---- CSV text <-> rows ----

def header(name: str) -> str:
    """A column's current spelling."""
    name = name.strip()
    name = OLD_NAMES.get(name, name)
    return _OLD_TYPE.sub(r"\1 - Label", name) if _OLD_TYPE.fullmatch(name) else name


def parse_csv(data: bytes | str) -> list[Row]:
    """The rows of a Google Contacts CSV (either spelling); rows with no data are skipped."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        names = [header(name) for name in next(reader, [])]
        rows = [_row(names, cells) for cells in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ParseError(f"not a Google Contacts CSV: {exc}") from None
    if not names:
        raise ParseError("not a Google Contacts CSV: no header line")
    return [row for row in rows if row]


def _row(names: Sequence[str], cells: Sequence[str]) -> Row:
    return {name: cell for name, cell in zip(names, cells, strict=False) if cell}


def serialize_csv(rows: Iterable[Row]) -> str:
    rows = list(rows)
    columns = _columns({name for row in rows for name in row}) or ["First Name"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([row.get(name, "") for name in columns] for row in rows)
    return out.getvalue()


def _columns(used: set[str]) -> list[str]:
    """Google's order: the single columns, then each family by number, then anything else."""
    columns = [name for name in SINGLES if name in used]
    numbered: dict[tuple[int, int], list[str]] = {}
    for name in used:
        match = _FAMILY.fullmatch(name)
        if match and match.group(1) in FAMILIES:
            family = list(FAMILIES).index(match.group(1))
            numbered.setdefault((family, int(match.group(2))), []).append(match.group(3))
    for (family, number), subs in sorted(numbered.items()):
        name = list(FAMILIES)[family]
        canonical = FAMILIES[name]
        ordered = [*canonical, *sorted(s for s in subs if s not in canonical)]
        columns.extend(f"{name} {number} - {sub}" for sub in ordered)
    return columns + sorted(used - set(columns))


# ---- rows <-> vCards ----

def csv_to_vcards(data: bytes | str, version: Version = "3.0") -> list[str]:
    seen = Occurrences()
    return [row_to_vcard(row, version, uid=_uid(row, seen), record=_name(index, row))
            for index, row in enumerate(parse_csv(data))]


def csv_records(data: bytes | str, version: Version = "3.0") -> list[str | Unconverted]:
    """Every row in order: its contact as vCard text (as `csv_to_vcards` gives it), or a row
    that cannot be converted as it was read, to be written back unchanged (its UID is known:
    a row's UID never needs converting). ParseError only for a file that is not a CSV."""
    seen = Occurrences()
    records: list[str | Unconverted] = []
    for index, row in enumerate(parse_csv(data)):
        uid = _uid(row, seen)
        try:
            records.append(row_to_vcard(row, version, uid=uid, record=_name(index, row)))
        except ParseError as exc:
            error = exc if isinstance(exc, ConvertError) else ConvertError(
                _name(index, row), str(exc))
            records.append(Unconverted(row, error, uid))
    return records


def vcards_to_csv(texts: Iterable[str | Unconverted]) -> str:
    """The CSV for `texts`; a contact whose UID is not the one its row would be given on the
    next scan keeps it in a UID column, so reading the file back never duplicates it. A row
    kept as it was read (`Unconverted`) is written back as it is, in its place."""
    seen = Occurrences()
    rows: list[Row] = []
    for index, text in enumerate(texts):
        if isinstance(text, Unconverted):
            assert isinstance(text.raw, dict)
            rows.append(dict(text.raw))
            _uid(text.raw, seen)  # numbers the rows after it as the next scan will
            continue
        row, uid = vcard_to_row(text, record_name(index))
        if uid and uid != _uid(row, seen):
            row["UID"] = uid
        rows.append(row)
    return serialize_csv(rows)


def identity_key(row: Mapping[str, str]) -> str:
    """What a row without UID is known by: its names, first e-mail and first phone (so other
    edits keep its UID), or all of it when it has none of these."""
    keys = ("First Name", "Middle Name", "Last Name", "Name Prefix", "Name Suffix", "Name",
            "Nickname", "Organization Name", "E-mail 1 - Value", "Phone 1 - Value")
    picked = {k: row[k] for k in keys if row.get(k)}
    return json.dumps(picked or dict(row), sort_keys=True, ensure_ascii=False)


def _uid(row: Mapping[str, str], seen: Occurrences) -> str:
    key = seen.key(identity_key({k: v for k, v in row.items() if k != "UID"}))
    return row.get("UID") or derived_uid("google-csv", key)


def _name(index: int, row: Mapping[str, str]) -> str:
    return record_name(index, _formatted(row))


def _formatted(row: Mapping[str, str]) -> str:
    parts = [row.get(k, "") for k in ("Name Prefix", "First Name", "Middle Name", "Last Name",
                                      "Name Suffix")]
    composed = " ".join(p for p in parts if p)
    for candidate in (row.get("Name"), composed, row.get("Organization Name"),
                      row.get("E-mail 1 - Value"), row.get("Phone 1 - Value")):
        if candidate:
            return candidate.split(SEPARATOR)[0]
    return ""


def row_to_vcard(row: Mapping[str, str], version: Version = "3.0", *, uid: str | None = None,
                 record: str = "") -> str:
    """The contact of one row (current spelling, as parse_csv gives it)."""
    record = record or record_name(0, _formatted(row))
    card = new_card(version)
    add_text(card, "UID", uid or row.get("UID") or derived_uid("google-csv", identity_key(row)))
    add_text(card, "FN", _formatted(row))
    if row.get("Name"):
        add_text(card, "X-GOOGLE-NAME", row["Name"])
    add_name(card, *([row[k]] if row.get(k) else [] for k in (
        "Last Name", "First Name", "Middle Name", "Name Prefix", "Name Suffix")))
    for column, prop in TEXTS.items():
        if row.get(column):
            add_text(card, prop, row[column])
    if row.get("Organization Name") or row.get("Organization Department"):
        add_org(card, [row.get("Organization Name", ""), row.get("Organization Department", "")])
    if row.get("Labels"):
        card.add("categories").value = row["Labels"].split(SEPARATOR)
    if row.get("Photo"):
        add_photo(card, row["Photo"], version, record)
    _add_families(card, row, version, record)
    return serialize(card)


def _add_families(card: Any, row: Mapping[str, str], version: Version, record: str) -> None:
    numbers = _numbers(row)
    handled: set[str] = set()
    for family, prop in VALUE_FAMILIES.items():
        for n in numbers.get(family, []):
            label, value = (row.get(f"{family} {n} - {s}", "") for s in ("Label", "Value"))
            handled.update({f"{family} {n} - Label", f"{family} {n} - Value"})
            for one in value.split(SEPARATOR):
                add_text(card, prop, one, _label_params(label, version))
    for n in numbers.get("Address", []):
        handled.update(_add_addresses(card, row, n, version, record))
    if _DATE.fullmatch(row.get("Birthday", "")):
        add_text(card, "BDAY", row["Birthday"])
        handled.add("Birthday")
    for column, cell in row.items():
        if column not in handled and column not in _MAPPED:
            add_text(card, "X-GOOGLE-CSV", cell, {"X-COLUMN": [column]})


def _numbers(row: Mapping[str, str]) -> dict[str, list[int]]:
    found: dict[str, set[int]] = {}
    for column in row:
        match = _FAMILY.fullmatch(column)
        if match:
            found.setdefault(match.group(1), set()).add(int(match.group(2)))
    return {family: sorted(ns) for family, ns in found.items()}


def _add_addresses(card: Any, row: Mapping[str, str], n: int, version: Version,
                   record: str) -> set[str]:
    """Address n: each sub-column may hold several values joined by ' ::: ', matched by
    position; a column whose count differs is kept as its own cell instead."""
    columns = {sub: f"Address {n} - {sub}" for sub in (*ADR_SUBS, "Label", "Formatted")}
    cells = {sub: row.get(column, "") for sub, column in columns.items()}
    count = max(len(cells[sub].split(SEPARATOR)) for sub in ADR_SUBS)
    if not any(cells[sub] for sub in ADR_SUBS) or any(
            cells[sub] and len(cells[sub].split(SEPARATOR)) != count for sub in ADR_SUBS):
        return set()  # nothing structured, or no way to match values: kept as cells
    formatted = cells["Formatted"].split(SEPARATOR) if cells["Formatted"] else []
    handled = {columns[sub] for sub in ADR_SUBS} | {columns["Label"]}
    if len(formatted) not in (0, count):
        formatted = []
    else:
        handled.add(columns["Formatted"])
    for i in range(count):
        parts = [cells[sub].split(SEPARATOR)[i] if cells[sub] else "" for sub in ADR_SUBS]
        params = _label_params(cells["Label"], version)
        if formatted:
            params["X-GOOGLE-FORMATTED"] = [formatted[i]]
        add_address(card, parts, params)
    return handled


def _label_params(label: str, version: Version) -> dict[str, list[str]]:
    pref = label.startswith("* ")
    bare = label[2:] if pref else label
    types = _label_types(bare)
    params = type_params(types, pref, version)
    if _label(types) != bare:
        params["X-GOOGLE-LABEL"] = [bare]
    return params


def _label_types(bare: str) -> list[str]:
    """The TYPE values a label (without its `* `) is written as: Google's known labels as
    vCard's, any other as it is, except a label spelled `pref` (any case), which is written as
    no TYPE (and its shadow) because readers take TYPE=pref for the preferred flag."""
    if bare.lower() == "pref":
        return []
    return list(LABEL_TYPES.get(bare, (bare,) if bare else ()))


def _label(types: Sequence[str]) -> str:
    wanted = sorted(t.lower() for t in types)
    known = next((label for label, t in LABEL_TYPES.items() if sorted(t) == wanted), None)
    return known if known is not None else " ".join(types)


def vcard_to_row(text: str, record: str = "") -> tuple[Row, str]:
    """The row of one vCard (3.0 or 4.0) and its UID; ConvertError naming `record` if it is
    not a vCard. Properties the CSV has no column for are not carried (docs/conversion.md)."""
    _, lines = read_card(text, record or "1")
    row: Row = {}
    n = first(lines, "N")
    if n:
        parts = n.field_texts(5)
        row.update(zip(("Last Name", "First Name", "Middle Name", "Name Prefix", "Name Suffix"),
                       parts, strict=True))
    for column, prop in TEXTS.items():
        row[column] = SEPARATOR.join(line.text() for line in named(lines, prop))
    org = first(lines, "ORG")
    if org:
        row["Organization Name"], row["Organization Department"] = org.field_texts(2)
    row["Labels"] = SEPARATOR.join(v for line in named(lines, "CATEGORIES") for v in line.texts())
    row["Photo"] = SEPARATOR.join(line.photo_uri() for line in named(lines, "PHOTO"))
    row["Birthday"] = _text(lines, "BDAY")
    row["Name"] = _text(lines, "X-GOOGLE-NAME")
    for family, prop in VALUE_FAMILIES.items():
        _put_slots(row, family, named(lines, prop))
    _put_addresses(row, named(lines, "ADR"))
    for line in named(lines, "X-GOOGLE-CSV"):
        column = next(iter(line.param("X-COLUMN")), "")
        if column:
            row[column] = line.text()
    return {k: v for k, v in row.items() if v}, _text(lines, "UID")


def _text(lines: Sequence[Line], name: str) -> str:
    line = first(lines, name)
    return line.text() if line else ""


def _slot_label(line: Line) -> str:
    types, pref = line.types_and_pref()
    shadow = line.param("X-GOOGLE-LABEL")
    bare = shadow[0] if shadow and _label_types(shadow[0]) == types else _label(types)
    return ("* " if pref else "") + bare


def _put_slots(row: Row, family: str, lines: Sequence[Line]) -> None:
    """One numbered slot per label, in order of appearance; values of one label joined."""
    slots: dict[str, list[str]] = {}
    for line in lines:
        slots.setdefault(_slot_label(line), []).append(line.text())
    for n, (label, values) in enumerate(slots.items(), start=1):
        row[f"{family} {n} - Label"] = label
        row[f"{family} {n} - Value"] = SEPARATOR.join(values)


def _put_addresses(row: Row, lines: Sequence[Line]) -> None:
    slots: dict[str, list[Line]] = {}
    for line in lines:
        slots.setdefault(_slot_label(line), []).append(line)
    for n, (label, group) in enumerate(slots.items(), start=1):
        row[f"Address {n} - Label"] = label
        values = [line.field_texts(7) for line in group]
        for i, sub in enumerate(ADR_SUBS):
            if any(v[i] for v in values):
                row[f"Address {n} - {sub}"] = SEPARATOR.join(v[i] for v in values)
        formatted = [next(iter(line.param("X-GOOGLE-FORMATTED")), "") for line in group]
        if any(formatted):
            row[f"Address {n} - Formatted"] = SEPARATOR.join(formatted)


__all__ = ["csv_to_vcards", "header", "identity_key", "parse_csv", "row_to_vcard",
           "serialize_csv", "vcard_to_row", "vcards_to_csv"]
