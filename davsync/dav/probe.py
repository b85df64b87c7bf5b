"""What a change probe asks and what its answer says (`Probe`).

Where the quirks table rates "modified_marks" supported (Radicale), a collection's
getlastmodified is a change marker: Radicale makes it from one stat per item file and of the
folder (which a deletion touches), where its getctag reads every item: 70-90 ms against
0.7-0.9 s at 10 000 contacts. Its resolution is one second, so a change made in the same second
as the value read would not move it. A value is therefore recorded as a mark only when it is
*settled*: at least one second plus this request's whole round trip older than the server's
own clock (its Date header) in the same answer, so that the walk which produced it ran a full
second after the newest change it saw, and anything changed after that walk lands in a later
second. Until a mark is recorded the probe asks for getctag beside it, and getctag decides;
with one recorded (and younger than its lifetime, `state.store.MODIFIED_MARK_SECONDS`), for
getlastmodified alone. A change too recent to be settled is followed by a getctag probe in the
same run (`sync.gather`), so the run after it is still one probe.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from davsync.dav import xmlbodies as xb
from davsync.dav.api import Probe
from davsync.dav.quirks import ServerInfo, rating

if TYPE_CHECKING:  # the multistatus parser (5 ms) is not imported before the early probes go
    from davsync.dav.multistatus import DavResponse


def probe_props(server: ServerInfo, *, marked: bool) -> tuple[str, ...]:
    """What a change probe asks for. Where getlastmodified is a change marker (quirk
    "modified_marks") and a fresh one is stored (`marked`): that alone. Where it is one but
    none is stored (a first run, the last one not settled, or older than its lifetime):
    getctag beside it, which decides, while a settled getlastmodified becomes the mark.
    Elsewhere: getctag."""
    if rating(server, "modified_marks") != "supported":
        return xb.PROBE_PROPS
    return xb.MODIFIED_PROBE_PROPS if marked else (*xb.PROBE_PROPS, xb.GETLASTMODIFIED)


def probe_from(own: DavResponse, *, date: str | None = None, seconds: float = 0.0
               ) -> Probe | None:
    """The probe an answer to `probe_props` carries: its getctag and its getlastmodified
    (with `date`, the answer's Date header, and `seconds`, the request's round trip, to tell
    whether that is settled); None when it has neither."""
    ctag = own.text(xb.GETCTAG)
    modified = own.text(xb.GETLASTMODIFIED) or None
    if ctag is None and modified is None:
        return None
    return Probe(ctag, None, modified,
                 modified is not None and settled(modified, date, seconds))


def settled(modified: str, date: str | None, seconds: float) -> bool:
    """Whether `modified` is at least 1 s + `seconds` older than `date` (both HTTP dates, as
    the server wrote them); False when either cannot be read."""
    if not date:
        return False
    try:
        then, now = parsedate_to_datetime(modified), parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return (now - then).total_seconds() >= 1.0 + seconds
