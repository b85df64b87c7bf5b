"""Which getlastmodified values may be kept as a change mark (`dav.probe.settled`)."""

from __future__ import annotations

import pytest

from davsync.dav.api import Probe
from davsync.dav.multistatus import DavResponse, parse_multistatus
from davsync.dav.probe import probe_from, settled

T = "Tue, 01 Dec 2026 00:26:45 GMT"


@pytest.mark.parametrize(("date", "seconds", "expected"), [
    ("Tue, 01 Dec 2026 00:26:47 GMT", 0.05, True),  # 2 s older than the answer
    ("Tue, 01 Dec 2026 00:26:46 GMT", 0.05, False),  # a change in the next second could hide
    ("Tue, 01 Dec 2026 00:26:45 GMT", 0.0, False),  # the same second
    ("Tue, 01 Dec 2026 00:26:47 GMT", 1.5, False),  # a slow answer: the walk may be older
    ("Tue, 01 Dec 2026 00:26:49 GMT", 1.5, True),
    ("Tue, 01 Dec 2026 00:26:40 GMT", 0.05, False),  # a server clock behind its own files
    (None, 0.05, False),  # no Date header
    ("yesterday", 0.05, False),  # unreadable
])
def test_settled_needs_a_second_plus_the_round_trip(
    date: str | None, seconds: float, expected: bool
) -> None:
    assert settled(T, date, seconds) is expected


def test_an_unreadable_modification_time_is_never_settled() -> None:
    assert not settled("not a date", "Tue, 01 Dec 2026 00:26:47 GMT", 0.0)


def _own(props: str) -> DavResponse:
    body = (f'<multistatus xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><response>'
            f"<href>/u/c/</href><propstat><prop>{props}</prop>"
            "<status>HTTP/1.1 200 OK</status></propstat></response></multistatus>")
    own = parse_multistatus(body.encode(), "http://dav.example/u/c/").own("/u/c/")
    assert own is not None
    return own


def test_the_probe_takes_getlastmodified_where_the_answer_has_it() -> None:
    own = _own(f"<getlastmodified>{T}</getlastmodified>")
    probe = probe_from(own, date="Tue, 01 Dec 2026 00:27:00 GMT", seconds=0.1)
    assert probe == Probe(None, None, T, settled=True)
    assert probe is not None and probe.mark == T
    assert probe.shows_no_change(None, None, T)
    assert not probe.shows_no_change('"ctag"', "token", None)  # no mark stored: look
    racy = probe_from(own, date=T, seconds=0.1)
    assert racy is not None and racy.mark is None and racy.shows_no_change(None, None, T)


def test_else_the_getctag_and_else_nothing() -> None:
    assert probe_from(_own('<CS:getctag>"c1"</CS:getctag>')) == Probe('"c1"', None)
    assert probe_from(_own("<displayname>x</displayname>")) is None


MODIFIED = "Wed, 02 Dec 2026 12:00:00 GMT"


@pytest.mark.parametrize(("probe", "stored", "wanted"), [
    # a fresh change, not settled, against marks stored before: getctag first
    (Probe(None, None, MODIFIED, settled=False), ('"1"', "tok", None), True),
    (Probe(None, None, MODIFIED, settled=False), (None, "tok", "older"), True),
    # settled: the time itself is the next mark
    (Probe(None, None, MODIFIED, settled=True), ('"1"', "tok", None), False),
    # the probe carried a getctag: it decides
    (Probe('"2"', None, MODIFIED, settled=False), ('"1"', "tok", None), False),
    # nothing stored yet (a first pairing): nothing to keep the next run a probe
    (Probe(None, None, MODIFIED, settled=False), (None, None, None), False),
    # no change at all
    (Probe(None, None, MODIFIED, settled=False), ('"1"', "tok", MODIFIED), False),
])
def test_a_getctag_probe_comes_first_only_for_a_change_too_recent_to_be_a_mark(
    probe: Probe, stored: tuple[str | None, str | None, str | None], wanted: bool
) -> None:
    """The rule the engine re-probes by and the early sync-collection is held back by."""
    assert probe.wants_ctag_probe(*stored) is wanted
