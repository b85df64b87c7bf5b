"""The single body of a bulk create: many vCards back to back, or one VCALENDAR holding every
component of every item with each VTIMEZONE once.

Works on lines, not on a parsed model, so items reach the server byte for byte as the caller
made them (folded lines stay folded: continuation lines start with white space and never look
like BEGIN/END).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from davsync.dav.api import DavError

PRODID: Final = "-//davsync//bulk create//EN"


def _text(uid: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DavError(f"item {uid!r}: not UTF-8 text, cannot be uploaded") from None


def _escape_text(value: str) -> str:
    """RFC 5545 TEXT escaping for the calendar name property."""
    for raw, escaped in (("\\", "\\\\"), (";", "\\;"), (",", "\\,"), ("\n", "\\n")):
        value = value.replace(raw, escaped)
    return value


def vcard_body(items: Sequence[tuple[str, bytes]]) -> bytes:
    """All vCards concatenated, each ending in CRLF."""
    parts: list[str] = []
    for uid, data in items:
        text = _text(uid, data).strip("\r\n")
        if not text.upper().startswith("BEGIN:VCARD"):
            raise DavError(f"item {uid!r}: not a vCard (does not start with BEGIN:VCARD)")
        parts.append(text.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n")
    return "".join(parts).encode("utf-8")


def split_calendar(uid: str, text: str) -> list[list[str]]:
    """The top-level components (VEVENT, VTODO, VTIMEZONE, ...) of one VCALENDAR, as lines."""
    components: list[list[str]] = []
    current: list[str] = []
    depth = 0
    for line in text.replace("\r\n", "\n").split("\n"):
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
        if depth >= 2:
            current.append(line)
        if upper.startswith("END:"):
            depth -= 1
            if depth == 1 and current:
                components.append(current)
                current = []
        if depth < 0:
            break
    if depth != 0 or not components:
        raise DavError(f"item {uid!r}: not a complete VCALENDAR with at least one component")
    return components


def _tzid(component: list[str]) -> str | None:
    for line in component[1:]:
        if line.upper().startswith("TZID"):
            return line.split(":", 1)[-1].strip()
        if line.upper().startswith("BEGIN:"):
            return None
    return None


def calendar_body(items: Sequence[tuple[str, bytes]], displayname: str | None = None) -> bytes:
    """One VCALENDAR with every item's components; VTIMEZONEs deduplicated by TZID (first
    wins). X-WR-CALNAME carries the display name: Radicale makes it the collection's."""
    timezones: dict[str, list[str]] = {}
    others: list[list[str]] = []
    for uid, data in items:
        for component in split_calendar(uid, _text(uid, data)):
            if component[0].upper().startswith("BEGIN:VTIMEZONE"):
                tzid = _tzid(component)
                if tzid is not None:
                    timezones.setdefault(tzid, component)
                    continue
            others.append(component)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}"]
    if displayname:
        lines.append(f"X-WR-CALNAME:{_escape_text(displayname)}")
    for component in [*timezones.values(), *others]:
        lines.extend(component)
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
