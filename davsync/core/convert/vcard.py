"""Building and reading vCards for the converters.

vobject builds them (escaping, folding, quoting of parameters). Reading goes through the core's
bounded line parser with vobject's value splitters, because vobject's own reader keeps only the
text before the first unescaped comma of most properties (`NICKNAME:a,b` reads as `a`, a vCard
4.0 `PHOTO:data:image/png;base64,...` as `data:image/png;base64`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import vobject
from vobject.icalendar import stringToTextValues
from vobject.vcard import Address, Name, splitFields

from davsync.core.convert import ConvertError
from davsync.core.item import parse_item
from davsync.core.vtext import ParseError, parse, split_unquoted

Version = Literal["3.0", "4.0"]
Params = Mapping[str, Sequence[str]]

_IMAGE_DATA = re.compile(r"data:image/([a-z0-9.+-]+);base64,([A-Za-z0-9+/]*={0,2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SNIFF = (("/9j/", "image/jpeg"), ("iVBOR", "image/png"), ("R0lGOD", "image/gif"))


def new_card(version: Version) -> Any:
    card = vobject.vCard()
    card.add("version").value = version
    return card


def add_text(card: Any, name: str, value: str, params: Params | None = None) -> None:
    """A TEXT property; vobject escapes `\\ , ;` and line breaks."""
    line = card.add(name.lower())
    line.value = value
    _set_params(line, params)


def add_raw(card: Any, name: str, value: str, params: Params | None = None) -> None:
    """A property whose value is written as is (a URI: escaping would corrupt `data:` URIs)."""
    line = card.add(name.lower())
    line.value = value
    line.encoded = True
    _set_params(line, params)


def add_name(card: Any, family: Sequence[str], given: Sequence[str], additional: Sequence[str],
             prefix: Sequence[str], suffix: Sequence[str]) -> None:
    """N: each component a comma-separated list (vobject escapes commas inside values)."""
    card.add("n").value = Name(family=list(family), given=list(given),
                               additional=list(additional), prefix=list(prefix),
                               suffix=list(suffix))


def add_address(card: Any, fields: Sequence[str], params: Params | None = None) -> None:
    """ADR from (post office box, extended, street, locality, region, postal code, country)."""
    box, extended, street, city, region, code, country = fields
    line = card.add("adr")
    line.value = Address(box=box, extended=extended, street=street, city=city, region=region,
                         code=code, country=country)
    _set_params(line, params)


def add_org(card: Any, units: Sequence[str], params: Params | None = None) -> None:
    line = card.add("org")
    line.value = list(units)
    _set_params(line, params)


def add_photo(card: Any, uri: str, version: Version, record: str) -> None:
    """vCard 3.0 carries a base64 image `data:` URI as ENCODING=b with the image type (what 3.0
    readers understand); any other URI, and every photo in 4.0, is written as the URI itself."""
    if _CONTROL.search(uri):
        raise ConvertError(record, "a photo is not a URI (it contains control characters)")
    match = _IMAGE_DATA.fullmatch(uri)
    if version == "3.0" and match and _canonical_base64(match.group(2)):
        line = card.add("photo")
        line.value = base64.b64decode(match.group(2))
        line.encoding_param = "b"
        line.type_param = match.group(1).upper()
        return
    add_raw(card, "PHOTO", uri, {"VALUE": ["uri"]} if version == "3.0" else None)


def _canonical_base64(text: str) -> bool:
    try:
        return base64.b64encode(base64.b64decode(text, validate=True)).decode() == text
    except binascii.Error:
        return False


def _set_params(line: Any, params: Params | None) -> None:
    for key, values in (params or {}).items():
        if values:
            line.params[key.upper()] = [encode_param(v) for v in values]


def serialize(card: Any) -> str:
    return str(card.serialize())


def encode_param(value: str) -> str:
    """RFC 6868: a parameter value may hold `"`, line breaks and `^` only encoded."""
    return value.replace("^", "^^").replace("\r\n", "^n").replace("\n", "^n") \
        .replace("\r", "^n").replace('"', "^'")


def decode_param(value: str) -> str:
    return re.sub(r"\^([n'^])", lambda m: {"n": "\n", "'": '"', "^": "^"}[m.group(1)], value)


@dataclass(frozen=True)
class Line:
    """One property of a read vCard: its name, decoded parameters and raw (escaped) value."""

    name: str
    params: tuple[tuple[str, str], ...]
    raw: str

    def param(self, key: str) -> list[str]:
        return [value for name, value in self.params if name == key]

    def text(self) -> str:
        """A TEXT value unescaped; a stray unescaped comma is kept as a comma."""
        return ",".join(self.texts())

    def texts(self) -> list[str]:
        """A comma-separated TEXT list (CATEGORIES, NICKNAME) unescaped."""
        return [str(v) for v in stringToTextValues(self.raw)]

    def fields(self, count: int) -> list[list[str]]:
        """A structured value (N, ADR, ORG): `count` components, each a list of values."""
        parts: list[list[str]] = []
        for field in splitFields(self.raw):
            values = field if isinstance(field, list) else [field]
            parts.append([str(v) for v in values])
        return (parts + [[] for _ in range(count)])[:count]

    def field_texts(self, count: int) -> list[str]:
        """A structured value whose components are single texts (ADR): lists joined by ','."""
        return [",".join(values) for values in self.fields(count)]

    def types_and_pref(self) -> tuple[list[str], bool]:
        """TYPE values without `pref`, and whether the property is preferred (3.0 TYPE=pref,
        4.0 PREF=n)."""
        types = self.param("TYPE")
        pref = any(t.lower() == "pref" for t in types) or bool(self.param("PREF"))
        return [t for t in types if t.lower() != "pref"], pref

    def photo_uri(self) -> str:
        """PHOTO as a URI: inline base64 (3.0 ENCODING=b) as a `data:` URI, else the value."""
        if not any(e.lower() in {"b", "base64"} for e in self.param("ENCODING")):
            return self.raw
        data = "".join(self.raw.split())
        kind = next(iter(self.param("TYPE")), "").lower()
        mime = kind if "/" in kind else f"image/{kind}" if kind else _sniff(data)
        return f"data:{mime};base64,{data}"


def _sniff(data: str) -> str:
    return next((mime for head, mime in _SNIFF if data.startswith(head)),
                "application/octet-stream")


def type_params(types: Sequence[str], pref: bool, version: Version) -> dict[str, list[str]]:
    """TYPE (and PREF) parameters: 3.0 marks the preferred value TYPE=pref, 4.0 PREF=1."""
    params: dict[str, list[str]] = {}
    listed = [*types, "pref"] if pref and version == "3.0" else list(types)
    if listed:
        params["TYPE"] = listed
    if pref and version == "4.0":
        params["PREF"] = ["1"]
    return params


def read_card(text: str, record: str) -> tuple[str, list[Line]]:
    """The version and properties of one vCard; ConvertError naming `record` if it is not one."""
    try:
        parse_item(text, "contacts")  # bounded, and exactly one VCARD
        root = parse(text)[0]
    except ParseError as exc:
        raise ConvertError(record, f"not a vCard: {exc}") from None
    lines = [Line(p.name, tuple(_decoded(p.params)), p.value) for p in root.props]
    version = next((line.raw.strip() for line in lines if line.name == "VERSION"), "3.0")
    return version, lines


def _decoded(params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, raw in params:
        for value in split_unquoted(raw, ","):
            out.append((key, decode_param(value.replace('"', ""))))
    return out


def first(lines: Sequence[Line], name: str) -> Line | None:
    return next((line for line in lines if line.name == name), None)


def named(lines: Sequence[Line], name: str) -> list[Line]:
    return [line for line in lines if line.name == name]
