"""Provisioning request parsing and the sign-up policy."""

from __future__ import annotations

import json

import pytest

from davsync.server.protocol import ProtocolError, allowed, parse_provision


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_valid_request() -> None:
    req = parse_provision(body(assertion=" a.b.c ", device_id="abc-1", device_name="Phone"))
    assert (req.assertion, req.device_id, req.device_name) == ("a.b.c", "abc-1", "Phone")


def test_device_name_defaults_to_id_and_unknown_fields_are_ignored() -> None:
    req = parse_provision(body(assertion="x", device_id="abc", future_field=1))
    assert req.device_name == "abc"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        body(device_id="abc"),
        body(assertion="", device_id="abc"),
        body(assertion=5, device_id="abc"),
        body(assertion="x"),
        body(assertion="x", device_id="has space"),
        body(assertion="x", device_id="a" * 129),
        body(assertion="x", device_id="../etc"),
        body(assertion="x", device_id="ok", device_name="bad\nname"),
        body(assertion="x", device_id="ok", device_name=""),
    ],
)
def test_malformed_requests_are_400(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_provision(raw)
    assert (info.value.status, info.value.code) == (400, "invalid_request")
    assert info.value.body()["error_description"]


def test_policy_open_when_no_lists() -> None:
    assert allowed("s", None, False, (), ())


def test_policy_by_subject_or_verified_domain() -> None:
    assert allowed("s1", None, False, ("s1",), ())
    assert not allowed("s2", None, False, ("s1",), ())
    assert allowed("s2", "a@Example.org", True, (), ("example.org",))
    assert not allowed("s2", "a@example.org", False, (), ("example.org",))  # unverified
    assert not allowed("s2", "a@evil.org", True, (), ("example.org",))
