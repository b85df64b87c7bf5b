"""The immutable `Item`: one contact or one event/task resource, with its UID and content hash.

The hash ignores what servers and clients rewrite on their own (PRODID, REV, DTSTAMP,
LAST-MODIFIED, line folding, parameter order and case, property order, RRULE part order), so a
server's re-serialization never looks like a user's edit.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import lru_cache

from davsync.core.kinds import SUFFIX, Kind
from davsync.core.vtext import (
    Component,
    ParseError,
    Prop,
    check_size,
    decode,
    escape_text,
    fold,
    parse,
    split_line,
    split_unquoted,
    unfold,
)

ROOT = {"contacts": "VCARD", "calendars": "VCALENDAR"}
IGNORED = frozenset({"PRODID", "REV", "DTSTAMP", "LAST-MODIFIED", "X-RADICALE-NAME"})
CAL_ITEMS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})
RECUR_PROPS = frozenset({"RRULE", "EXRULE"})


@dataclass(frozen=True)
class Item:
    """`text` is what is stored and sent; `uid` may be None only for a vCard/event lacking one."""

    kind: Kind
    text: str
    uid: str | None
    hash: str
    count: int  # contacts: 1; calendars: the number of VEVENT/VTODO/VJOURNAL components

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


def parse_item(data: bytes | str, kind: Kind) -> Item:
    """Parse one resource of `kind`; raises ParseError saying what is wrong, and nothing else
    whatever the input (the parser's limits bound its time and memory)."""
    check_size(len(data))
    text = decode(data) if isinstance(data, bytes) else _valid_text(data)
    roots = parse(text)
    want = ROOT[kind]
    if len(roots) != 1 or roots[0].name != want:
        names = ", ".join(r.name[:40] for r in roots[:3]) + (", ..." if len(roots) > 3 else "")
        raise ParseError(f"expected one {want} object, found {names or 'none'}")
    root = roots[0]
    uid, count = _uid_and_count(root, kind)
    return Item(kind, text, uid, content_hash(root), count)


def _valid_text(text: str) -> str:
    """`text` if it can be stored and sent as UTF-8 (no lone surrogate), else ParseError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError(f"not valid Unicode text ({exc.reason} at character {exc.start})") \
            from None
    return text


def _uid_and_count(root: Component, kind: Kind) -> tuple[str | None, int]:
    if kind == "contacts":
        prop = root.first("UID")
        return (_clean_uid(prop.value) if prop else None), 1
    items = [c for c in root.children if c.name in CAL_ITEMS]
    if not items:
        raise ParseError("VCALENDAR holds no VEVENT, VTODO or VJOURNAL")
    uids = {_clean_uid(p.value) for c in items if (p := c.first("UID")) is not None}
    uids.discard("")
    if len(uids) > 1:
        shown = [uid[:60] for uid in sorted(uids)[:3]]
        raise ParseError(f"one resource must hold one UID, found {len(uids)}: {shown}")
    missing = sum(1 for c in items if c.first("UID") is None)
    if missing and (uids or missing > 1):
        raise ParseError("some components have no UID; cannot tell which event they belong to")
    return (next(iter(uids)) if uids else None), len(items)


def title(item: Item) -> str | None:
    """What a person calls the item (a contact's FN, an event's SUMMARY), for messages."""
    roots = parse(item.text)
    if not roots:
        return None
    if item.kind == "contacts":
        prop = roots[0].first("FN")
    else:
        found = (c.first("SUMMARY") for c in roots[0].children if c.name in CAL_ITEMS)
        prop = next((p for p in found if p is not None), None)
    value = prop.value.replace("\\,", ",").replace("\\;", ";").strip() if prop else ""
    return value or None


def _clean_uid(value: str) -> str:
    return value.strip()


def content_hash(root: Component) -> str:
    return hashlib.sha256(_normalize(root).encode("utf-8")).hexdigest()


def _normalize(comp: Component) -> str:
    if comp.name == "VTIMEZONE":
        # Servers regenerate time zone definitions from their own database (Radicale via
        # vobject does); the TZID is what events refer to.
        tzid = comp.first("TZID")
        return f"VTIMEZONE:{tzid.value.strip() if tzid else ''}"
    props = sorted(
        _norm_prop(p) for p in comp.props
        if p.name not in IGNORED
        and not (p.name == "CALSCALE" and p.value.strip().upper() == "GREGORIAN")
    )
    children = sorted(_normalize(c) for c in comp.children)
    return "\n".join([f"BEGIN:{comp.name}", *props, *children, f"END:{comp.name}"])


def _norm_prop(prop: Prop) -> str:
    if not prop.params and prop.name not in RECUR_PROPS:  # the common case, same result
        return f"{prop.name}:{prop.value.rstrip()}"
    if (len(prop.params) <= _CACHED_PARAMS
            and sum(len(v) for _, v in prop.params) <= _CACHED_CHARS):
        head = _norm_head_cached(prop.name, prop.params)
    else:  # an unusual (or hostile) head is not kept
        head = _norm_head(prop.name, prop.params)
    value = prop.value.rstrip()
    if prop.name in RECUR_PROPS:  # Xandikos (via icalendar) reorders the rule parts
        value = ";".join(sorted(part.upper() for part in value.split(";")))
    return f"{head}:{value}"


def _norm_head(name: str, raw_params: tuple[tuple[str, str], ...]) -> str:
    """The name and parameters as the hash sees them (values split, sorted, case folded where
    case means nothing)."""
    params: set[tuple[str, str]] = set()
    for key, raw in raw_params:
        for value in _split_param_values(raw):
            value = value.lower() if key in {"TYPE", "ENCODING", "VALUE"} else value
            params.add((key, value))
    if ("ENCODING", "b") in params or ("ENCODING", "base64") in params:
        params -= {("ENCODING", "b"), ("ENCODING", "base64")}
        params.add(("ENCODING", "b"))
    return ";".join([name, *(f"{k}={v}" for k, v in sorted(params))])


# Most items repeat the same few heads (`TEL;TYPE=CELL`): short ones are normalized once.
_norm_head_cached = lru_cache(maxsize=1024)(_norm_head)
_CACHED_PARAMS = 8
_CACHED_CHARS = 200  # of parameter values


def _split_param_values(raw: str) -> list[str]:
    if '"' not in raw:  # nothing quoted: a plain split gives the same
        return raw.split(",")
    return [value.replace('"', "") for value in split_unquoted(raw, ",")]


def new_uid() -> str:
    return str(uuid.uuid4())


def with_uid(item: Item, uid: str) -> Item:
    """The same item carrying `uid` (replacing any UID it had), re-serialized with CRLF."""
    out: list[str] = []
    for line in unfold(item.text):
        prop = split_line(line)
        if prop.name == "UID":
            continue
        if _ends(prop) == "VCARD" or _ends(prop) in CAL_ITEMS:
            out.append(f"UID:{uid}")  # before END: vCard 4.0 wants VERSION right after BEGIN
        out.append(line)
    return parse_item(_serialize(out), item.kind)


def with_note(item: Item, note: str) -> Item:
    """The item with `note` added (vCard NOTE, or appended to each event's DESCRIPTION)."""
    out: list[str] = []
    has_desc: list[bool] = []  # per open component: does it have a DESCRIPTION yet?
    for line in unfold(item.text):
        prop = split_line(line)  # the item parsed, so every line is inside BEGIN/END
        if prop.name == "BEGIN":
            has_desc.append(False)
        if item.kind == "calendars" and prop.name == "DESCRIPTION":
            line = f"{line}\\n\\n{escape_text(note)}"
            has_desc[-1] = True
        name = _ends(prop)
        if name is not None:
            if item.kind == "contacts" and name == "VCARD":
                out.append(f"NOTE:{escape_text(note)}")
            elif name in CAL_ITEMS and not has_desc[-1]:
                out.append(f"DESCRIPTION:{escape_text(note)}")
            has_desc.pop()
        out.append(line)
    return parse_item(_serialize(out), item.kind)


def _ends(prop: Prop) -> str | None:
    """The component an END line closes (as the parser reads it), else None."""
    return prop.value.strip().upper() if prop.name == "END" else None


def _serialize(lines: list[str]) -> str:
    return "".join(fold(line) + "\r\n" for line in lines)


__all__ = [
    "SUFFIX",
    "Item",
    "Kind",
    "ParseError",
    "content_hash",
    "new_uid",
    "parse_item",
    "with_note",
    "with_uid",
]
