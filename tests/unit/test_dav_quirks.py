"""The quirks table and recognising servers."""

from __future__ import annotations

import pytest

from davsync.dav.quirks import (
    QUIRKS,
    RADICALE,
    UNKNOWN_SERVER,
    ServerInfo,
    identify,
    parse_version,
    rating,
)


def test_every_quirk_is_named_rated_and_explained() -> None:
    assert len({(q.feature, q.product) for q in QUIRKS}) == len(QUIRKS)
    assert all(q.rating in ("supported", "unsupported", "fragile") and q.why for q in QUIRKS)


@pytest.mark.parametrize(
    ("server", "feature", "expected"),
    [
        (ServerInfo(RADICALE, (3, 9, 0)), "bulk_put_new_collection", "supported"),
        (ServerInfo(RADICALE, (2, 1)), "bulk_put_new_collection", None),  # too old to know
        (ServerInfo(RADICALE, (3, 9)), "sync_collection_truncation", "unsupported"),
        (ServerInfo("nextcloud", (28,)), "bulk_put_new_collection", None),
        (UNKNOWN_SERVER, "sync_collection", None),
        (ServerInfo(RADICALE, (3,)), "no_such_feature", None),
    ],
)
def test_rating_lookup(server: ServerInfo, feature: str, expected: str | None) -> None:
    assert rating(server, feature) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"radicale_version": "3.9.0"}, ServerInfo(RADICALE, (3, 9, 0))),
        ({"sync_token": "http://radicale.org/ns/sync/abc"}, ServerInfo(RADICALE, (3,))),
        ({"www_authenticate": 'Basic realm="Radicale - Password Required"'},
         ServerInfo(RADICALE, (3,))),
        ({"sync_token": "https://example.com/ns/sync/1", "www_authenticate": 'Basic realm="x"'},
         UNKNOWN_SERVER),
        ({}, UNKNOWN_SERVER),
    ],
)
def test_identify(kwargs: dict[str, str], expected: ServerInfo) -> None:
    assert identify(**kwargs) == expected


def test_parse_version() -> None:
    assert parse_version("3.9.0") == (3, 9, 0)
    assert parse_version("3.1rc1") == (3,)
    assert parse_version("dev") == ()
