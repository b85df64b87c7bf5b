"""RFC 8628 polling decisions, as a table: each token-endpoint answer and what happens next."""

from __future__ import annotations

import pytest

from davsync.credentials.device_grant import (
    Decision,
    Done,
    Failed,
    Poll,
    TokenAnswer,
    Wait,
    decide,
)
from davsync.credentials.secret import Secret

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
