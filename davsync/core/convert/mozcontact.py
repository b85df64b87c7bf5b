"""Firefox OS / KaiOS contacts (the W3C Contacts API `mozContact` shape) <-> vCard.

An export is one JSON array of contact objects. The model keeps the API's own field names, so
the code reads like the specification. Everything a record holds comes back unchanged from its
vCard (docs/conversion.md lists the few normalizations): what vCard has no property for travels
as `X-MOZ-*` properties, which servers keep, and keys this module does not know travel as JSON
in `X-MOZ-EXTRA`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from davsync.core.convert import (
    ConvertError,
    Occurrences,
    Unconverted,
    derived_uid,
    record_name,
)
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

STRING_LISTS = ("name", "honorificPrefix", "givenName", "additionalName", "familyName",
                "honorificSuffix", "nickname", "org", "jobTitle", "note", "category", "photo")
FIELD_LISTS = ("email", "tel", "url", "impp")
STRINGS = ("id", "bday", "anniversary", "sex", "genderIdentity", "updated")
ADR_PARTS = ("streetAddress", "locality", "region", "postalCode", "countryName")
KNOWN = frozenset((*STRING_LISTS, *FIELD_LISTS, *STRINGS, "adr"))

# mozContact tel types that vCard spells differently; anything else is written as it is.
TEL_TYPES = {"mobile": ("cell",), "faxHome": ("fax", "home"), "faxOffice": ("fax", "work"),
             "faxOther": ("fax",)}
_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


@dataclass(frozen=True)
class ContactField:
    """An email, tel, url or impp entry (`carrier` is only used by tel)."""

    value: str
    type: tuple[str, ...] = ()
    pref: bool = False
    carrier: str = ""


@dataclass(frozen=True)
class ContactAddress:
    type: tuple[str, ...] = ()
    streetAddress: str = ""
    locality: str = ""
    region: str = ""
    postalCode: str = ""
    countryName: str = ""
    pref: bool = False


@dataclass(frozen=True)
class MozContact:
    """One contact. Absent, null and empty values are one value (the API treats them alike);
    `extra` holds the keys this module does not map, as canonical JSON ("" when none)."""

    id: str = ""
    name: tuple[str, ...] = ()
    honorificPrefix: tuple[str, ...] = ()
    givenName: tuple[str, ...] = ()
    additionalName: tuple[str, ...] = ()
    familyName: tuple[str, ...] = ()
    honorificSuffix: tuple[str, ...] = ()
    nickname: tuple[str, ...] = ()
    email: tuple[ContactField, ...] = ()
    tel: tuple[ContactField, ...] = ()
    adr: tuple[ContactAddress, ...] = ()
    org: tuple[str, ...] = ()
    jobTitle: tuple[str, ...] = ()
    bday: str = ""
    note: tuple[str, ...] = ()
    photo: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    url: tuple[ContactField, ...] = ()
    impp: tuple[ContactField, ...] = ()
    anniversary: str = ""
    sex: str = ""
    genderIdentity: str = ""
    updated: str = ""
    extra: str = field(default="", compare=True)

    def display(self) -> str:
        """The name a person would see: `name`, else the name parts, else org, email, tel."""
        parts = (*self.givenName, *self.additionalName, *self.familyName)
        for candidate in (self.name, (" ".join(parts),), self.org,
                          tuple(f.value for f in self.email), tuple(f.value for f in self.tel)):
            if candidate and candidate[0]:
                return candidate[0]
        return ""


# ---- the export file ----

def parse_export(data: bytes | str) -> list[MozContact]:
    """The contacts of an export (a JSON array); ParseError for a file that is not one, and
    ConvertError naming the first record that is not a contact."""
    return [from_json(item, index) for index, item in enumerate(_export_values(data))]


def _export_values(data: bytes | str) -> list[object]:
    """The records of an export as JSON values; ParseError for a file that is not an array."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"not a JSON contacts export: {str(exc)[:200]}") from None
    if not isinstance(value, list):
        raise ParseError("not a JSON contacts export: expected an array of contacts")
    return value


def serialize_export(contacts: Iterable[MozContact]) -> str:
    return json.dumps([to_json(c) for c in contacts], ensure_ascii=False, indent=1) + "\n"


def export_to_vcards(data: bytes | str, version: Version = "3.0") -> list[str]:
    """Every contact of an export as vCard text; contacts without `id` get derived UIDs that
    stay distinct even for identical records."""
    seen = Occurrences()
    cards = []
    for index, contact in enumerate(parse_export(data)):
        uid = contact.id or derived_uid("mozcontact", seen.key(identity_key(contact)))
        cards.append(to_vcard(contact, version, uid=uid, record=_name(index, contact)))
    return cards


def export_records(data: bytes | str, version: Version = "3.0") -> list[str | Unconverted]:
    """Every record of an export in order: a contact as vCard text (as `export_to_vcards`
    gives it), or a record that cannot be converted as its JSON value, to be written back
    unchanged. ParseError only for a file that is not a JSON array."""
    seen = Occurrences()
    records: list[str | Unconverted] = []
    for index, value in enumerate(_export_values(data)):
        try:
            records.append(_record_vcard(value, index, seen, version))
        except ParseError as exc:
            error = exc if isinstance(exc, ConvertError) else ConvertError(
                record_name(index), str(exc))
            records.append(Unconverted(value, error, contact_id(value)))
    return records


def _record_vcard(value: object, index: int, seen: Occurrences, version: Version) -> str:
    contact = from_json(value, index)
    uid = contact.id or derived_uid("mozcontact", seen.key(identity_key(contact)))
    return to_vcard(contact, version, uid=uid, record=_name(index, contact))


def contact_id(value: object) -> str | None:
    """The `id` a JSON record names, even one that cannot be converted (None without one)."""
    if isinstance(value, dict):
        found = value.get("id")
        if isinstance(found, str) and found:
            return found
    return None


def serialize_records(records: Iterable[MozContact | Unconverted]) -> str:
    """An export of contacts and of records kept as they were read, in order."""
    values = [r.raw if isinstance(r, Unconverted) else to_json(r) for r in records]
    return json.dumps(values, ensure_ascii=False, indent=1) + "\n"


def identity_key(contact: MozContact) -> str:
    """What a contact without `id` is known by: its content without `updated`."""
    fields_ = to_json(contact)
    fields_.pop("updated", None)
    return json.dumps(fields_, sort_keys=True, ensure_ascii=False)


def _name(index: int, contact: MozContact) -> str:
    return record_name(index, contact.display())


# ---- JSON <-> model ----

def from_json(value: object, index: int = 0) -> MozContact:
    if not isinstance(value, dict):
        raise ConvertError(record_name(index), "not a JSON object")
    record = record_name(index, _json_name(value))
    args: dict[str, Any] = {}
    for key in STRING_LISTS:
        args[key] = _strings(value.get(key), record, key)
    for key in STRINGS:
        args[key] = _string(value.get(key), record, key)
    for key in FIELD_LISTS:
        args[key] = tuple(_contact_field(v, record, f"{key} {i + 1}")
                          for i, v in enumerate(_list(value.get(key), record, key)))
    args["adr"] = tuple(_address(v, record, f"adr {i + 1}")
                        for i, v in enumerate(_list(value.get("adr"), record, "adr")))
    extra = {k: v for k, v in value.items() if k not in KNOWN}
    args["extra"] = _canonical(extra) if extra else ""
    return MozContact(**args)


def _json_name(value: dict[Any, Any]) -> str:
    name = value.get("name")
    if isinstance(name, list) and name and isinstance(name[0], str):
        return name[0]
    return name if isinstance(name, str) else ""


def _list(value: object, record: str, key: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConvertError(record, f"{key} is not a list")
    return value


def _strings(value: object, record: str, key: str) -> tuple[str, ...]:
    """A list of strings (one string is taken as a list of one); empty strings dropped."""
    items = [value] if isinstance(value, str) else _list(value, record, key)
    out = []
    for item in items:
        if item is None or item == "":
            continue
        if not isinstance(item, str):
            raise ConvertError(record, f"{key} holds a {type(item).__name__}, not text")
        out.append(item)
    return tuple(out)


def _string(value: object, record: str, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConvertError(record, f"{key} is a {type(value).__name__}, not text")
    return value


def _bool(value: object, record: str, key: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConvertError(record, f"{key}.pref is not true or false")
    return value


def _object(value: object, record: str, key: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ConvertError(record, f"{key} is not a JSON object")
    return value


def _contact_field(value: object, record: str, key: str) -> ContactField:
    obj = _object(value, record, key)
    return ContactField(value=_string(obj.get("value"), record, f"{key}.value"),
                        type=_strings(obj.get("type"), record, f"{key}.type"),
                        pref=_bool(obj.get("pref"), record, key),
                        carrier=_string(obj.get("carrier"), record, f"{key}.carrier"))


def _address(value: object, record: str, key: str) -> ContactAddress:
    obj = _object(value, record, key)
    parts = {part: _string(obj.get(part), record, f"{key}.{part}") for part in ADR_PARTS}
    return ContactAddress(type=_strings(obj.get("type"), record, f"{key}.type"),
                          pref=_bool(obj.get("pref"), record, key), **parts)


def to_json(contact: MozContact) -> dict[str, Any]:
    """The contact as an export object: empty values left out, unknown keys put back."""
    out: dict[str, Any] = {}
    for f in fields(contact):
        value = getattr(contact, f.name)
        if f.name == "extra" or not value:
            continue
        if f.name in FIELD_LISTS:
            value = [_field_json(v) for v in value]
        elif f.name == "adr":
            value = [_address_json(v) for v in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    if contact.extra:
        out.update(json.loads(contact.extra))
    return out


def _field_json(value: ContactField) -> dict[str, Any]:
    out: dict[str, Any] = {"type": list(value.type), "value": value.value, "pref": value.pref}
    if value.carrier:
        out["carrier"] = value.carrier
    return out


def _address_json(value: ContactAddress) -> dict[str, Any]:
    out: dict[str, Any] = {"type": list(value.type)}
    out.update({part: getattr(value, part) for part in ADR_PARTS if getattr(value, part)})
    out["pref"] = value.pref
    return out


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ---- model -> vCard ----

def to_vcard(contact: MozContact, version: Version = "3.0", *, uid: str | None = None,
             record: str = "") -> str:
    """The contact as one vCard (3.0 unless `version` says 4.0). Its UID is `uid`, else `id`,
    else derived from its content (see identity_key)."""
    record = record or record_name(0, contact.display())
    card = new_card(version)
    add_text(card, "UID", uid or contact.id or derived_uid("mozcontact", identity_key(contact)))
    _add_names(card, contact)
    for name, entries in (("EMAIL", contact.email), ("URL", contact.url),
                          ("IMPP", contact.impp)):
        for entry in entries:
            add_text(card, name, entry.value, type_params(entry.type, entry.pref, version))
    for entry in contact.tel:
        add_text(card, "TEL", entry.value, _tel_params(entry, version))
    for adr in contact.adr:
        parts = ("", "", *(getattr(adr, part) for part in ADR_PARTS))
        add_address(card, parts, type_params(adr.type, adr.pref, version))
    _add_texts(card, contact, version)
    for uri in contact.photo:
        add_photo(card, uri, version, record)
    if contact.category:
        card.add("categories").value = list(contact.category)
    return serialize(card)


def _add_names(card: Any, contact: MozContact) -> None:
    """FN is `name[0]`; a contact without `name` gets FN derived from its other fields (vCard
    requires one) and X-MOZ-NO-NAME holding that FN, so the way back can tell."""
    formatted = contact.name[0] if contact.name else contact.display()
    add_text(card, "FN", formatted)
    if not contact.name:
        add_text(card, "X-MOZ-NO-NAME", formatted)
    for other in contact.name[1:]:
        add_text(card, "X-MOZ-NAME", other)
    add_name(card, contact.familyName, contact.givenName, contact.additionalName,
             contact.honorificPrefix, contact.honorificSuffix)


def _add_texts(card: Any, contact: MozContact, version: Version) -> None:
    for name, values in (("NICKNAME", contact.nickname), ("TITLE", contact.jobTitle),
                         ("NOTE", contact.note)):
        for value in values:
            add_text(card, name, value)
    for org in contact.org:
        add_org(card, [org])
    _add_date(card, "BDAY", "X-MOZ-BDAY", contact.bday)
    anniversary = "ANNIVERSARY" if version == "4.0" else "X-ANNIVERSARY"
    _add_date(card, anniversary, "X-MOZ-ANNIVERSARY", contact.anniversary)
    for name, value in (("X-MOZ-SEX", contact.sex),
                        ("X-MOZ-GENDER-IDENTITY", contact.genderIdentity),
                        ("REV", contact.updated), ("X-MOZ-EXTRA", contact.extra)):
        if value:
            add_text(card, name, value)


def _add_date(card: Any, name: str, shadow: str, value: str) -> None:
    """A date as the vCard date it denotes, and the exact text in `shadow` when it says more
    (a time, a time zone) or is no date vCard can carry."""
    date = _date_part(value)
    if date:
        add_text(card, name, date)
    if value and value != date:
        add_text(card, shadow, value)


def _date_part(value: str) -> str:
    match = _DATE.match(value)
    return "-".join(match.groups()) if match else ""


def _tel_params(entry: ContactField, version: Version) -> dict[str, list[str]]:
    types = _vcard_tel_types(entry.type)
    params = type_params(types, entry.pref, version)
    if list(_moz_tel_types(types)) != list(entry.type):
        params["X-MOZ-TYPE"] = list(entry.type)
    if entry.carrier:
        params["X-MOZ-CARRIER"] = [entry.carrier]
    return params


def _vcard_tel_types(types: Sequence[str]) -> list[str]:
    out: list[str] = []
    for moz in types:
        out.extend(t for t in TEL_TYPES.get(moz, (moz,)) if t not in out)
    return out


def _moz_tel_types(types: Sequence[str]) -> tuple[str, ...]:
    lower = {t.lower() for t in types}
    fax = "faxHome" if "home" in lower else "faxOffice" if "work" in lower else "faxOther"
    out: list[str] = []
    for vtype in types:
        key = vtype.lower()
        if "fax" in lower and key in {"fax", "home", "work"}:
            moz = fax
        else:
            moz = "mobile" if key == "cell" else vtype
        if moz not in out:
            out.append(moz)
    return tuple(out)


# ---- vCard -> model ----

def from_vcard(text: str, record: str = "") -> MozContact:
    """The contact a vCard (3.0 or 4.0) describes; ConvertError naming `record` if it is not
    one. Properties mozContact has no field for are not carried (docs/conversion.md)."""
    record = record or "1"
    _, lines = read_card(text, record)
    family, given, additional, prefix, suffix = _name_parts(first(lines, "N"))
    return MozContact(
        id=_text(lines, "UID"), name=_names(lines), honorificPrefix=prefix, givenName=given,
        additionalName=additional, familyName=family, honorificSuffix=suffix,
        nickname=_texts(lines, "NICKNAME"),
        email=_fields(lines, "EMAIL"), tel=tuple(_tel(line) for line in named(lines, "TEL")),
        adr=tuple(_adr(line) for line in named(lines, "ADR")),
        org=tuple(org for line in named(lines, "ORG") if (org := line.field_texts(1)[0])),
        jobTitle=_texts(lines, "TITLE"), bday=_date(lines, "BDAY", "X-MOZ-BDAY"),
        note=_texts(lines, "NOTE"), photo=tuple(p.photo_uri() for p in named(lines, "PHOTO")),
        category=tuple(v for line in named(lines, "CATEGORIES") for v in line.texts() if v),
        url=_fields(lines, "URL"), impp=_fields(lines, "IMPP"),
        anniversary=_anniversary(lines),
        sex=_text(lines, "X-MOZ-SEX"), genderIdentity=_text(lines, "X-MOZ-GENDER-IDENTITY"),
        updated=_text(lines, "REV"), extra=_extra(lines, record),
    )


def _text(lines: Sequence[Line], name: str) -> str:
    line = first(lines, name)
    return line.text() if line else ""


def _texts(lines: Sequence[Line], name: str) -> tuple[str, ...]:
    return tuple(value for line in named(lines, name) if (value := line.text()))


def _names(lines: Sequence[Line]) -> tuple[str, ...]:
    formatted = _text(lines, "FN")
    no_name = first(lines, "X-MOZ-NO-NAME")
    own = () if not formatted or (no_name and no_name.text() == formatted) else (formatted,)
    return own + _texts(lines, "X-MOZ-NAME")


def _name_parts(line: Line | None) -> list[tuple[str, ...]]:
    parts = line.fields(5) if line else [[] for _ in range(5)]
    return [tuple(v for v in values if v) for values in parts]


def _fields(lines: Sequence[Line], name: str) -> tuple[ContactField, ...]:
    out = []
    for line in named(lines, name):
        types, pref = line.types_and_pref()
        out.append(ContactField(value=line.text(), type=tuple(types), pref=pref))
    return tuple(out)


def _tel(line: Line) -> ContactField:
    types, pref = line.types_and_pref()
    shadow = line.param("X-MOZ-TYPE")
    moz = tuple(shadow) if shadow and _vcard_tel_types(shadow) == types \
        else _moz_tel_types(types)
    carrier = next(iter(line.param("X-MOZ-CARRIER")), "")
    return ContactField(value=line.text(), type=moz, pref=pref, carrier=carrier)


def _adr(line: Line) -> ContactAddress:
    types, pref = line.types_and_pref()
    parts = line.field_texts(7)[2:]
    return ContactAddress(type=tuple(types), pref=pref, **dict(zip(ADR_PARTS, parts, strict=True)))


def _date(lines: Sequence[Line], name: str, shadow_name: str) -> str:
    """The date, or its exact original text while that still denotes the same date (an edit
    on the server wins over the shadow)."""
    line, shadow = first(lines, name), _text(lines, shadow_name)
    date = _date_part(line.text().strip()) or line.text().strip() if line else ""
    if shadow and _date_part(shadow) == (date if line else ""):
        return shadow
    return date


def _anniversary(lines: Sequence[Line]) -> str:
    name = "ANNIVERSARY" if first(lines, "ANNIVERSARY") else "X-ANNIVERSARY"
    return _date(lines, name, "X-MOZ-ANNIVERSARY")


def _extra(lines: Sequence[Line], record: str) -> str:
    text = _text(lines, "X-MOZ-EXTRA")
    if not text:
        return ""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ConvertError(record, "X-MOZ-EXTRA is not JSON") from None
    if not isinstance(value, dict):
        raise ConvertError(record, "X-MOZ-EXTRA is not a JSON object")
    extra = {k: v for k, v in value.items() if k not in KNOWN}
    return _canonical(extra) if extra else ""


__all__ = [
    "ContactAddress",
    "ContactField",
    "MozContact",
    "export_to_vcards",
    "from_json",
    "from_vcard",
    "identity_key",
    "parse_export",
    "serialize_export",
    "to_json",
    "to_vcard",
]
