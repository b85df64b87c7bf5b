"""What particular DAV servers do differently, as one table of named, rated entries.

After python-caldav's compatibility hints: the client asks `rating(server, feature)` instead of
testing server names in `if` branches. A feature nobody rated is `None` (unknown): the client then
asks the server itself (supported-report-set) or takes the portable path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Rating = Literal["supported", "unsupported", "fragile"]

RADICALE: Final = "radicale"
RADICALE_NS: Final = "http://radicale.org/ns/"
_RADICALE_SYNC_URI_PREFIX: Final = "http://radicale.org/ns/sync/"


@dataclass(frozen=True)
class ServerInfo:
    """Which server software answered, as far as we could tell (product None: unknown)."""

    product: str | None = None
    version: tuple[int, ...] = ()


UNKNOWN_SERVER: Final = ServerInfo()


@dataclass(frozen=True)
class Quirk:
    feature: str
    product: str
    min_version: tuple[int, ...]
    rating: Rating
    why: str


QUIRKS: Final[tuple[Quirk, ...]] = (
    Quirk(
        "bulk_put_new_collection",
        RADICALE,
        (3,),
        "supported",
        "A PUT of a multi-item body (many vCards, or one VCALENDAR with many components) to a "
        "collection URL that does not exist yet creates the collection with every item in one "
        "request. Item-by-item upload is O(N^2) on Radicale (~27 PUT/s for the first 1000).",
    ),
    Quirk(
        "bulk_put_timezones",
        RADICALE,
        (3,),
        "fragile",
        "Radicale 3.9 regenerates the VTIMEZONE of every TZID-bearing event in a bulk PUT: "
        "measured ~0.11 s per event (200 events: 23 s) against ~0.07 s for a single PUT while "
        "the collection is small. Still linear, so bulk remains the better path for large "
        "calendars; UTC and floating events cost ~6 ms each.",
    ),
    Quirk(
        "sync_collection",
        RADICALE,
        (2,),
        "supported",
        "RFC 6578 sync-collection with tokens; deletions are answered as 404 responses.",
    ),
    Quirk(
        "sync_collection_data",
        RADICALE,
        (3,),
        "supported",
        "A sync-collection from an empty token that asks for address-data / calendar-data "
        "beside getetag answers every item with its data, for about the cost of the etag-only "
        "listing (10 000 contacts: 21 s against 26 s for getetag alone, on one loaded machine): "
        "a first pairing is one request instead of a listing and N/50 multigets.",
    ),
    Quirk(
        "query_all_data",
        RADICALE,
        (3,),
        "supported",
        "An addressbook-query / calendar-query matching everything answers every item with "
        "its data in 2.0 s at 10 000 contacts, where a sync-collection from an empty token "
        "with the data takes 5.0 s and with etags alone 4.3 s (Radicale builds sync answers "
        "item by item): a first pairing asks the sync-token first (PROPFIND Depth 0, about "
        "1 s), then the query, and applies the items while they stream in.",
    ),
    Quirk(
        "modified_marks",
        RADICALE,
        (3,),
        "supported",
        "A collection's getlastmodified is the newest modification time of its folder (which "
        "a deletion touches), its properties and every item file: a stat each, 70-90 ms at "
        "10 000 contacts where getctag reads every item (0.7-0.9 s), so the change probe asks "
        "for it. One-second resolution: only a settled value is kept as a mark (`dav.probe`). "
        "Files edited in the storage behind Radicale's back with their old times kept do not "
        "move it: a mark is trusted for an hour (`state.store.MODIFIED_MARK_SECONDS`).",
    ),
    Quirk(
        "sync_collection_truncation",
        RADICALE,
        (3,),
        "unsupported",
        "DAV:limit is ignored and 507 never sent: every delta comes in one answer.",
    ),
    Quirk(
        "etag_on_collection_put",
        RADICALE,
        (3,),
        "unsupported",
        "A PUT to a collection answers an empty ETag header: learn item etags with one "
        "sync-collection listing afterwards.",
    ),
)


def rating(server: ServerInfo, feature: str) -> Rating | None:
    """How `server` does at `feature`; None when the table does not know."""
    for quirk in QUIRKS:
        if (
            quirk.feature == feature
            and quirk.product == server.product
            and server.version >= quirk.min_version
        ):
            return quirk.rating
    return None


def parse_version(text: str) -> tuple[int, ...]:
    """"3.9.0" -> (3, 9, 0); stops at the first part that is not a number ("3.1rc1" -> (3,))."""
    parts: list[int] = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


_REALM = re.compile(r'realm="Radicale', re.IGNORECASE)


def identify(
    *,
    radicale_version: str | None = None,
    sync_token: str | None = None,
    www_authenticate: str | None = None,
) -> ServerInfo:
    """Recognise the server from what it already told us.

    Radicale 3.9 names itself in the `{http://radicale.org/ns/}version` property of a principal,
    in its sync-token URIs and in its Basic realm; its Server header is only WSGIServer's.
    """
    if radicale_version:
        return ServerInfo(RADICALE, parse_version(radicale_version))
    if sync_token and sync_token.startswith(_RADICALE_SYNC_URI_PREFIX):
        return ServerInfo(RADICALE, (3,))
    if www_authenticate and _REALM.search(www_authenticate):
        return ServerInfo(RADICALE, (3,))
    return UNKNOWN_SERVER
