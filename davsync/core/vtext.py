"""Content lines of vCard (RFC 6350/2426) and iCalendar (RFC 5545): decode, unfold, parse.

A deliberately small parser: it keeps every line verbatim (so nothing a user wrote is lost on
a round trip) and only understands what sync needs: components, property names, parameters and
UIDs. Full parsers (vobject, icalendar) are 20-50x slower, which matters at 10 000 items.

Its work is bounded, because one item (from a device file or a server) must never stop a run:
an item over MAX_BYTES, MAX_LINES content lines, MAX_PARAMS parameters or MAX_DEPTH nested
components is a ParseError naming the limit, and time and memory stay linear in the size of the
text, with no Python loop per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

_FOLD = re.compile(r"\r?\n[ \t]")
_LINE = re.compile(r"[^\r\n]+")
_NAME = re.compile(r"[A-Z0-9-]+")
_QUOTED = r'"[^"]*+"?'  # a quoted run; one left open runs to the end
_HEAD = re.compile(rf'(?:[^":]++|{_QUOTED})*+:')  # everything before the first unquoted ':'
_UNQUOTED = {sep: re.compile(rf'(?:[^"{sep}]++|{_QUOTED})*+') for sep in ";,"}

MAX_BYTES: Final = 32 << 20  # a contact with a large photo stays well below
MAX_LINES: Final = 100_000  # content lines (after unfolding; blank lines are not counted)
MAX_DEPTH: Final = 16  # nesting of components; real data uses 3 (VCALENDAR/VEVENT/VALARM)
MAX_PARAMS: Final = 100_000  # parameters and their comma-separated values, in one item
_SPLIT_AT_ONCE: Final = 2 * MAX_LINES  # line breaks up to which a text is split in one call


class ParseError(ValueError):
    """The text is not a well-formed vCard/iCalendar object; the message says where."""


def decode(data: bytes) -> str:
    """Bytes to text: UTF-8 (with or without BOM), else Windows-1252, else Latin-1.

    Real exports carry legacy 8-bit text; refusing them would strand the user's data, and
    Latin-1 maps every byte, so decoding never fails.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def unfold(text: str) -> list[str]:
    """Logical lines: folds joined, any newline convention, blank lines dropped."""
    return [line for line in _LINE.findall(_joined(text)) if not line.isspace()]


def _joined(text: str) -> str:
    """`text` with folded lines joined (the regular expression only where there are folds)."""
    return _FOLD.sub("", text) if "\n " in text or "\n\t" in text else text


@dataclass(slots=True)
class Prop:
    """One content line: `group.NAME;PARAM=x:value`, with the original line kept."""

    name: str
    params: tuple[tuple[str, str], ...]
    value: str
    line: str


@dataclass(slots=True)
class Component:
    name: str
    props: list[Prop] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def first(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)

    def walk(self) -> list[Component]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def split_line(line: str) -> Prop:
    """Split a content line into name, parameters and value, honouring quoted parameters."""
    colon = line.find(":")
    if colon > 0 and '"' not in line[:colon]:  # the common case: no quoted parameter
        head, value = line[:colon], line[colon + 1 :]
        _check_params(head.count(";"))  # before splitting: a hostile head is not split at all
        return _prop(head.split(";"), value, line)
    match = _HEAD.match(line)
    if match is None:
        raise ParseError(f"line without ':' separator: {line[:60]!r}")
    head, value = line[: match.end() - 1], line[match.end() :]
    _check_params(head.count(";"))
    return _prop(split_unquoted(head, ";"), value, line)


def _check_params(count: int) -> None:
    if count > MAX_PARAMS:
        raise ParseError(f"more than {MAX_PARAMS} parameters")


def split_unquoted(text: str, sep: str) -> list[str]:
    """`text` split at each `sep` (";" or ",") outside double quotes, quotes kept; a quote left
    open runs to the end. Regular expressions with possessive quantifiers, so a hostile line
    costs linear time in C rather than a Python loop per character."""
    pattern = _UNQUOTED[sep]
    parts: list[str] = []
    pos = 0
    while True:
        match = pattern.match(text, pos)
        assert match is not None  # the pattern matches the empty string
        parts.append(match.group())
        pos = match.end() + 1  # past the separator
        if pos > len(text):
            return parts


def _prop(parts: list[str], value: str, line: str) -> Prop:
    first = parts[0]
    name = (first.rpartition(".")[2] if "." in first else first).upper()  # drop "item1."
    if _NAME.fullmatch(name) is None:
        raise ParseError(f"invalid property name {first[:40]!r}")
    if len(parts) == 1:  # most lines have no parameter
        return Prop(name, (), value, line)
    params = []
    for raw in parts[1:]:
        key, _, val = raw.partition("=")
        params.append((key.upper(), val))
    return Prop(name, tuple(params), value, line)


def _unquoted_head(head: str) -> tuple[str, tuple[tuple[str, str], ...], int]:
    """A head without quotes (`NAME`, `group.NAME;PARAM=a,b`): its name, its parameters and
    their count (each comma-separated value counted, for MAX_PARAMS), remembered: the same
    few heads (`TEL;TYPE=CELL`, `FN`) make up most lines of most items."""
    _check_params(head.count(";"))  # before splitting: a hostile head is not split at all
    prop = _prop(head.split(";"), "", "")
    known = (prop.name, prop.params, _weight(prop.params))
    if len(head) <= _HEAD_CACHED_CHARS:
        if len(_HEADS) >= _HEADS_KEPT:  # a hostile item's heads are all different
            _HEADS.clear()
        _HEADS[head] = known
    return known


def _weight(params: tuple[tuple[str, str], ...]) -> int:
    """What `params` count towards MAX_PARAMS: each parameter and each further value."""
    return len(params) + sum(value.count(",") for _, value in params)


# Heads parsed lately -> `_unquoted_head`: a few hundred distinct ones in real address books.
_HEADS: Final[dict[str, tuple[str, tuple[tuple[str, str], ...], int]]] = {}
_HEADS_KEPT: Final = 2048
_HEAD_CACHED_CHARS: Final = 200


def parse(text: str) -> list[Component]:
    """Parse every top-level component; raises ParseError on unbalanced BEGIN/END or when a
    limit (MAX_BYTES, MAX_LINES, MAX_DEPTH) is passed."""
    check_size(len(text))
    roots: list[Component] = []
    stack: list[Component] = []
    number = 0
    params = 0
    for line in _lines(text):
        if not line or line.isspace():
            continue
        number += 1
        if number > MAX_LINES:
            raise ParseError(f"more than {MAX_LINES} lines")
        colon = line.find(":")
        head = line[:colon]
        if colon <= 0 or '"' in head:
            prop = split_line(line)
            weight = _weight(prop.params)
        else:  # the common line: split_line without its steps, the head's parts remembered
            known = _HEADS.get(head) or _unquoted_head(head)
            prop = Prop(known[0], known[1], line[colon + 1 :], line)
            weight = known[2]
        if weight:
            params += weight
            _check_params(params)
        if prop.name == "BEGIN":
            if len(stack) >= MAX_DEPTH:
                raise ParseError(f"components nested more than {MAX_DEPTH} deep "
                                 f"(line {number}: {line[:40]!r})")
            comp = Component(prop.value.strip().upper())
            (stack[-1].children if stack else roots).append(comp)
            stack.append(comp)
        elif prop.name == "END":
            name = prop.value.strip().upper()
            if not stack or stack[-1].name != name:
                open_name = stack[-1].name if stack else "nothing"
                raise ParseError(f"END:{name[:40]} does not close {open_name[:40]}")
            stack.pop()
        elif not stack:
            raise ParseError(f"property {prop.name[:40]} outside any BEGIN/END block")
        else:
            stack[-1].props.append(prop)
    if stack:
        raise ParseError(f"BEGIN:{stack[-1].name[:40]} is never closed (truncated file?)")
    if not roots:
        raise ParseError("no BEGIN:VCARD or BEGIN:VCALENDAR found")
    return roots


def _lines(text: str) -> Iterable[str]:
    """The lines of `text` with its folds joined, some of them empty: split at once in C,
    except in a text with more line breaks than `_SPLIT_AT_ONCE` (a hostile run of empty
    lines), which is split lazily so that MAX_LINES stops it early."""
    joined = _joined(text)
    if joined.count("\n") + joined.count("\r") > _SPLIT_AT_ONCE:
        return (match.group() for match in _LINE.finditer(joined))
    if "\r" in joined:
        joined = joined.replace("\r\n", "\n").replace("\r", "\n")
    return joined.split("\n")


def check_size(size: int) -> None:
    """ParseError when an item of `size` bytes (or characters) is over MAX_BYTES."""
    if size > MAX_BYTES:
        raise ParseError(f"too large: {size} bytes, at most {MAX_BYTES} are read "
                         f"({MAX_BYTES >> 20} MiB)")


def fold(line: str, limit: int = 75) -> str:
    """Fold one logical line at `limit` octets without splitting a UTF-8 sequence."""
    raw = line.encode("utf-8")
    if len(raw) <= limit:
        return line
    pieces, start, first = [], 0, True
    while start < len(raw):
        width = limit if first else limit - 1
        end = min(start + width, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(raw[start:end].decode("utf-8"))
        start, first = end, False
    return "\r\n ".join(pieces)


def escape_text(value: str) -> str:
    """RFC 5545/6350 TEXT escaping."""
    return (
        value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    )
