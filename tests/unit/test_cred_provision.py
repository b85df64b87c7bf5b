"""Interpreting provisioning answers, Retry-After, token expiry and the assertion command."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from davsync.core.retry import parse_retry_after
from davsync.credentials.provision import (
    AssertionFailed,
    CachedIdToken,
    CommandAssertion,
    LoginRequired,
    ProvisionError,
    ProvisionUnreachable,
    interpret_provision,
    revoke_url,
    token_usable,
)
from davsync.credentials.store import DeviceCredentials, FileSecretStore, save_id_token
from davsync.errors import EXIT_CONFIG, EXIT_UNREACHABLE, ConfigError
from davsync.secret import Secret

URL = "http://127.0.0.1:8080/provision"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _body(**data: object) -> bytes:
    return json.dumps(data).encode()


def test_ok_answer_gives_credentials() -> None:
    body = _body(username="u1", password="pw-1", dav_url="http://127.0.0.1:1/u1/", device_id="d")
    creds = interpret_provision(URL, 200, {}, body, NOW)
    assert (creds.username, creds.password, creds.dav_url, creds.device_id, creds.server) == (
        "u1",
        Secret("pw-1"),
        "http://127.0.0.1:1/u1/",
        "d",
        URL,
    )


def test_the_answer_may_set_the_daemon_mode_and_it_is_kept_with_the_credentials() -> None:
    answer = {"username": "u1", "password": "pw-1", "dav_url": "http://127.0.0.1:1/u1/",
              "device_id": "d"}
    assert interpret_provision(URL, 200, {}, _body(**answer), NOW).mode is None
    creds = interpret_provision(URL, 200, {}, _body(**answer, mode="restore"), NOW)
    assert creds.mode == "restore"
    assert DeviceCredentials.from_record(creds.to_record()) == creds
    with pytest.raises(ProvisionError, match="the answer's mode 'upload-all' is none of both, "
                       "backup, restore, disabled; is this davsync's provisioning server"):
        interpret_provision(URL, 200, {}, _body(**answer, mode="upload-all"), NOW)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        _body(username="u1"),
        _body(username="u", password="p", dav_url="ftp://x", device_id="d"),
    ],
)
def test_incomplete_ok_answer_is_an_error(body: bytes) -> None:
    with pytest.raises(ProvisionError, match=URL):
        interpret_provision(URL, 200, {}, body, NOW)


def test_a_dav_url_with_user_info_is_refused_and_not_repeated() -> None:
    body = _body(username="u", password="p", device_id="d",
                 dav_url="https://u:hunter2@dav.example.org/u/")
    with pytest.raises(ProvisionError) as info:
        interpret_provision(URL, 200, {}, body, NOW)
    assert "the answer's dav_url carries user info (user:password@); refused" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "headers", "words", "retry"),
    [
        (400, {}, "malformed", None),
        (401, {}, "assertion", None),
        (403, {}, "administrator", None),
        (429, {"retry-after": "120"}, "retry in 120 s", 120.0),
        (429, {}, "retry later", None),
        (418, {}, "unexpected answer 418", None),
    ],
)
def test_error_statuses(
    status: int, headers: dict[str, str], words: str, retry: float | None
) -> None:
    body = _body(error="some_error", error_description="what the server says")
    with pytest.raises(ProvisionError) as info:
        interpret_provision(URL, status, headers, body, NOW)
    message = str(info.value)
    assert URL in message and words in message and "what the server says" in message
    assert info.value.status == status
    assert info.value.retry_after == retry
    assert info.value.exit_code == EXIT_UNREACHABLE


def test_server_error_is_unreachable() -> None:
    with pytest.raises(ProvisionUnreachable, match="502"):
        interpret_provision(URL, 502, {}, b"", NOW)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        ("Fri, 02 Jan 2026 03:05:05 GMT", 60.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_revoke_url_is_at_the_origin_root() -> None:
    assert revoke_url("https://dav.example.org:8443/api/provision?x=1") == (
        "https://dav.example.org:8443/.well-known/davsync/revoke"
    )


def _jwt(exp: float | None) -> Secret:
    claims = {"sub": "alice"} if exp is None else {"sub": "alice", "exp": int(exp)}
    return Secret(jwt.encode(claims, "k" * 32, algorithm="HS256"))


@pytest.mark.parametrize(
    ("token", "usable"),
    [
        (_jwt(2000.0), True),
        (_jwt(1010.0), False),  # inside the safety margin
        (_jwt(900.0), False),
        (_jwt(None), False),
        (Secret("not-a-jwt"), False),
    ],
)
def test_token_usable(token: Secret, usable: bool) -> None:
    assert token_usable(token, 1000.0) is usable


def test_cached_id_token(tmp_path: Path) -> None:
    store = FileSecretStore(tmp_path / "credentials.json")
    source = CachedIdToken(store, clock=lambda: 1000.0)
    with pytest.raises(LoginRequired, match="davsync login"):
        source.assertion()
    save_id_token(store, _jwt(900.0), "http://127.0.0.1:1")
    with pytest.raises(LoginRequired, match="expired"):
        source.assertion()
    save_id_token(store, _jwt(5000.0), "http://127.0.0.1:1")
    assert source.assertion() == load_token(store)


def load_token(store: FileSecretStore) -> Secret:
    record = store.get("id_token")
    assert record is not None
    return Secret(record["id_token"])


def test_assertion_command_first_line() -> None:
    cmd = f"{sys.executable} -c \"print('eyJ.first'); print('second')\""
    assert CommandAssertion(cmd).assertion() == Secret("eyJ.first")


def test_failing_assertion_command_exits_3_without_echoing_output() -> None:
    cmd = f"{sys.executable} -c \"print('leaked-token'); raise SystemExit(1)\""
    with pytest.raises(AssertionFailed) as info:
        CommandAssertion(cmd).assertion()
    assert info.value.exit_code == EXIT_UNREACHABLE
    assert "status 1" in str(info.value)
    assert "leaked-token" not in str(info.value)


def test_missing_assertion_command_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no-such-davsync-helper") as info:
        CommandAssertion("no-such-davsync-helper --id-token").assertion()
    assert info.value.exit_code == EXIT_CONFIG
