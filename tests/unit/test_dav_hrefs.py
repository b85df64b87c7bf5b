"""Canonical hrefs and the names new items get."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from radicale import pathutils
from radicale.item import get_etag

from davsync.dav.hrefs import (
    _normalize_fully,
    href_for,
    item_name,
    member_href,
    normalize_href,
    radicale_bulk_fits,
    radicale_bulk_names,
)

BASE = "http://127.0.0.1:5232/u/ab/"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/u/ab/a%20b.vcf", "/u/ab/a%20b.vcf"),
        ("/u/ab/a b.vcf", "/u/ab/a%20b.vcf"),
        ("http://127.0.0.1:5232/u/ab/x%40y.vcf", "/u/ab/x@y.vcf"),
        ("x.vcf", "/u/ab/x.vcf"),
        ("/u/ab/a%2fb.vcf", "/u/ab/a%2Fb.vcf"),  # an encoded slash stays inside the segment
        ("/u/ab/%C3%BC.vcf", "/u/ab/%C3%BC.vcf"),
        ("/u/ab/ü.vcf", "/u/ab/%C3%BC.vcf"),
        ("  /u/ab/  ", "/u/ab/"),
        # A host part that does not parse names nothing of ours (urllib raises on it).
        ("//h:x/u/ab/a.vcf", "invalid-origin:/u/ab/a.vcf"),
        ("http://[::1/u/ab/a.vcf", "invalid-origin:/"),
    ],
)
def test_normalize_href(href: str, expected: str) -> None:
    assert normalize_href(href, BASE) == expected


@given(st.text(min_size=1, max_size=40))
def test_normalize_is_idempotent_and_equates_spellings(name: str) -> None:
    once = member_href("/u/ab/", name)
    assert normalize_href(once, BASE) == once
    assert once.startswith("/u/ab/")


_HREF_PIECES = st.sampled_from(
    ["", ".", "..", "%", "%2F", "%41", "a", "Z", "0", "-", "_", "~", "@", ":", ";", ",", "=",
     "+", "$", "&", "'", "(", "*", "!", " ", "?", "#", "\\", "ü", "\t", "http:", "x.vcf"]
)
# Mostly absolute paths (the shortcut's case) of segments built from the pieces; some hrefs
# free-form (relative, "//host", a full URL).
_HREFS = st.one_of(
    st.lists(st.lists(_HREF_PIECES, max_size=3).map("".join), min_size=1, max_size=5)
    .map(lambda segments: "/" + "/".join(segments)),
    st.lists(st.sampled_from(["/", "//", "a", ".", "%2F", " ", "http://h", "?"]), max_size=8)
    .map("".join),
)


@given(_HREFS, st.sampled_from(
    [BASE, "https://h.example/a/", "/u/ab/", "//other/u/", "webcal://h/u/", "HTTP://h/u/"]))
def test_the_shortcut_for_canonical_paths_gives_what_the_full_normalization_gives(
    href: str, base: str
) -> None:
    assert normalize_href(href, base) == _normalize_fully(href, base)


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        ("alice@example.org", "alice@example.org.vcf"),
        ("A-b_c.1", "A-b_c.1.vcf"),
        ("with space", "with%20space.vcf"),
        ("{GUID}+x", "%7BGUID%7D%2Bx.vcf"),
        ("sl/ash", hashlib.sha1(b"sl/ash").hexdigest() + ".vcf"),  # noqa: S324
        (".hidden", hashlib.sha1(b".hidden").hexdigest() + ".vcf"),  # noqa: S324
        ("tab\there", hashlib.sha1(b"tab\there").hexdigest() + ".vcf"),  # noqa: S324
        ("x" * 201, hashlib.sha1(b"x" * 201).hexdigest() + ".vcf"),  # noqa: S324
    ],
)
def test_item_name(uid: str, expected: str) -> None:
    assert item_name(uid, ".vcf") == expected


def test_href_for_is_canonical_and_inside_the_collection() -> None:
    assert href_for("/u/ab/", "with space", ".vcf") == "/u/ab/with%20space.vcf"
    assert href_for("/u/cal", "{x}", ".ics") == "/u/cal/%7Bx%7D.ics"


@given(st.text(min_size=1, max_size=300))
def test_href_for_is_always_one_safe_segment(uid: str) -> None:
    href = href_for("/u/ab/", uid, ".vcf")
    name = href.removeprefix("/u/ab/")
    assert "/" not in name and name.endswith(".vcf") and not name.startswith(".")
    assert len(name) <= 220 and normalize_href(href, BASE) == href


@pytest.mark.parametrize(
    "uids",
    [
        ["plain", "with space", "sl/ash", ".hidden", "tilde~", "ends.vcf"],
        ["a", "a.vcf"],  # both want a.vcf: the second falls back to sha256
        ["a.VCF", "a"],
    ],
)
def test_radicale_bulk_names_match_radicales_rules(uids: list[str]) -> None:
    used: set[str] = set()
    expected: list[str] = []
    for uid in uids:  # radicale/storage/multifilesystem/upload.py, restated with its helpers
        plain = uid if uid.lower().endswith(".vcf") else uid + ".vcf"
        hashed = get_etag(uid).strip('"') + ".vcf"
        name = next(n for n in (plain, hashed)
                    if pathutils.is_safe_filesystem_path_component(n) and n not in used)
        used.add(name)
        expected.append(name)
    assert radicale_bulk_names(uids, ".vcf") == expected


def test_radicale_bulk_fits_only_names_the_filesystem_takes() -> None:
    assert radicale_bulk_fits("short", ".vcf")
    assert not radicale_bulk_fits("x" * 252, ".vcf")
    assert radicale_bulk_fits("/" + "x" * 400, ".vcf")  # unsafe: Radicale uses sha256 instead
