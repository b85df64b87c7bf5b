"""RFC 8628 polling decisions, as a table: each token-endpoint answer and what happens next."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest

from davsync.credentials.device_grant import (
    GRANT_TYPE,
    Decision,
    DeviceGrant,
    DeviceGrantError,
    Done,
    Failed,
    Poll,
    TokenAnswer,
    Wait,
    decide,
)
from davsync.secret import Secret

TOKEN = Secret("eyJhbGciOi.id.token")
START = Poll(interval=5.0, expires_at=1000.0)


@pytest.mark.parametrize(
    ("answer", "now", "interval_after", "expected"),
    [
        (TokenAnswer(400, "authorization_pending"), 100.0, 5.0, Wait(5.0)),
        (TokenAnswer(400, "slow_down"), 100.0, 10.0, Wait(10.0)),
        (TokenAnswer(200, id_token=TOKEN), 100.0, 5.0, Done(TOKEN)),
        (TokenAnswer(200), 100.0, 5.0, Failed("without an id_token")),
        (TokenAnswer(400, "access_denied"), 100.0, 5.0, Failed("denied")),
        (TokenAnswer(400, "expired_token"), 100.0, 5.0, Failed("expired")),
        (TokenAnswer(400, "invalid_client"), 100.0, 5.0, Failed("invalid_client")),
        (TokenAnswer(500), 100.0, 5.0, Failed("HTTP 500")),
        # pending, but the next poll would come after the device code dies
        (TokenAnswer(400, "authorization_pending"), 996.0, 5.0, Failed("expired")),
        (TokenAnswer(400, "slow_down"), 992.0, 10.0, Failed("expired")),
    ],
)
def test_decide(answer: TokenAnswer, now: float, interval_after: float, expected: Decision) -> None:
    poll, decision = decide(START, answer, now)
    assert poll.interval == interval_after
    assert poll.expires_at == START.expires_at
    if isinstance(expected, Failed):
        assert isinstance(decision, Failed)
        assert expected.reason in decision.reason
    else:
        assert decision == expected


def test_slow_down_accumulates() -> None:
    poll = START
    for _ in range(3):
        poll, decision = decide(poll, TokenAnswer(400, "slow_down"), 0.0)
    assert poll.interval == 20.0
    assert decision == Wait(20.0)


def test_failure_reasons_never_carry_the_token() -> None:
    _, decision = decide(START, TokenAnswer(400, "access_denied", id_token=TOKEN), 0.0)
    assert isinstance(decision, Failed)
    assert TOKEN.reveal() not in decision.reason


class ScriptedIssuer:
    """An RFC 8628 issuer behind httpx.MockTransport: the transport is swapped, nothing patched."""

    def __init__(self, token_answers: list[tuple[int, dict[str, str]]]) -> None:
        self.token_answers = token_answers
        self.token_forms: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        base = "http://127.0.0.1:9"
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": base,
                    "device_authorization_endpoint": base + "/device",
                    "token_endpoint": base + "/token",
                },
            )
        form = dict(parse_qsl(request.content.decode()))
        if request.url.path == "/device":
            assert form == {"client_id": "davsync-cli", "scope": "openid"}
            return httpx.Response(
                200,
                json={
                    "device_code": "DEVICE-CODE-SECRET",
                    "user_code": "WDJB-MJHT",
                    "verification_uri": base + "/activate",
                    "verification_uri_complete": base + "/activate?user_code=WDJB-MJHT",
                    "expires_in": 600,
                    "interval": 5,
                },
            )
        self.token_forms.append(form)
        status, body = self.token_answers.pop(0)
        return httpx.Response(status, json=body)


def _run(issuer: ScriptedIssuer) -> tuple[Secret, list[str], list[float]]:
    shown: list[str] = []
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with httpx.Client(transport=httpx.MockTransport(issuer)) as http:
        grant = DeviceGrant(
            "http://127.0.0.1:9/", "davsync-cli", http, shown.append, sleep, lambda: now[0]
        )
        return grant.run(), shown, slept


def test_device_grant_polls_until_the_token() -> None:
    issuer = ScriptedIssuer(
        [
            (400, {"error": "authorization_pending"}),
            (400, {"error": "slow_down"}),
            (400, {"error": "authorization_pending"}),
            (200, {"id_token": TOKEN.reveal(), "token_type": "Bearer"}),
        ]
    )
    token, shown, slept = _run(issuer)
    assert token == TOKEN
    assert slept == [5.0, 5.0, 10.0, 10.0]
    text = "\n".join(shown)
    assert "WDJB-MJHT" in text and "/activate?user_code=WDJB-MJHT" in text
    assert "DEVICE-CODE-SECRET" not in text
    assert all(
        f["grant_type"] == GRANT_TYPE and f["device_code"] == "DEVICE-CODE-SECRET"
        for f in issuer.token_forms
    )


def test_device_grant_denied_is_an_auth_error() -> None:
    issuer = ScriptedIssuer([(400, {"error": "access_denied"})])
    with pytest.raises(DeviceGrantError, match="denied") as info:
        _run(issuer)
    assert info.value.exit_code == 3
