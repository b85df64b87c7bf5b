"""Where a bulk-created item landed: predict Radicale's file names, check them against one
listing, and read UIDs for whatever did not match."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from davsync.dav.api import Created
from davsync.dav.hrefs import member_href, radicale_bulk_names

_UID_LINE = re.compile(rb"^UID[;:]", re.IGNORECASE)


@dataclass(frozen=True)
class BulkMapping:
    created: dict[str, Created]
    unmatched_uids: list[str]
    unmatched_hrefs: list[str]


def map_bulk(
    uids: Sequence[str],
    suffix: str,
    collection_path: str,
    listing: Mapping[str, str | None],
    *,
    server_sorts: bool,
) -> BulkMapping:
    """Match `uids` to the hrefs of `listing` by Radicale's naming. `server_sorts`: Radicale
    stores calendar components grouped by sorted UID, vCards in body order; the order decides
    who gets a name when two UIDs would collide."""
    order = sorted(uids) if server_sorts else list(uids)
    created: dict[str, Created] = {}
    unmatched: list[str] = []
    for uid, name in zip(order, radicale_bulk_names(order, suffix), strict=True):
        href = None if name is None else member_href(collection_path, name)
        if href is not None and href in listing:
            created[uid] = Created(href, listing[href])
        else:
            unmatched.append(uid)
    taken = {c.href for c in created.values()}
    rest = [href for href in listing if href not in taken]
    return BulkMapping(created, unmatched, rest)


def read_uid(data: bytes) -> str | None:
    """The first UID property of a vCard or iCalendar text (unfolded), or None."""
    unfolded = re.sub(rb"\r?\n[ \t]", b"", data)
    for line in unfolded.splitlines():
        if _UID_LINE.match(line):
            return line.split(b":", 1)[1].decode("utf-8", "replace").strip()
    return None
