"""ID-token verification: every way an assertion can be wrong gets its own error code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from davsync.server.assertions import AssertionRejected, AssertionVerifier, parse_jwks
from davsync.server.devissuer import DevIssuer
from davsync.server.settings import IssuerConfig

ISS = "https://issuer.example"
AUD = "client-1"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HMAC token built by hand: PyJWT itself refuses to use a public key as HMAC secret."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def unsigned(claims: dict[str, Any]) -> str:
    """An `alg: none` token, as an attacker would send it."""
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{b64(json.dumps(claims).encode())}."


class FakeIssuer:
    """Serves discovery and JWKS documents from memory and counts fetches (no network)."""

    def __init__(self) -> None:
        self.keys = DevIssuer()  # only its key handling; it is never started
        self.fetches: list[str] = []
        self.extra_keys: list[dict[str, Any]] = []

    def fetch(self, url: str) -> Any:
        self.fetches.append(url)
        if url == ISS + "/.well-known/openid-configuration":
            return {"issuer": ISS, "jwks_uri": ISS + "/keys"}
        if url == ISS + "/keys":
            return {"keys": self.keys.jwks()["keys"] + self.extra_keys}
        raise ValueError(f"unexpected URL {url}")

    def token(self, sub: str = "alice", **claims: Any) -> str:
        claims = {"iss": ISS, "aud": AUD, **claims}
        return self.keys.mint(sub, **claims)

    def claims(self, **over: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": ISS, "sub": "alice", "aud": AUD, "iat": now, "exp": now + 300, **over}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(issuer: FakeIssuer, clock: Clock) -> AssertionVerifier:
    config = IssuerConfig(ISS, AUD)
    return AssertionVerifier([config], issuer.fetch, min_refresh=30, clock=clock)


def rejected(verifier: AssertionVerifier, token: str) -> str:
    with pytest.raises(AssertionRejected) as info:
        verifier.verify(token)
    assert info.value.status == 401
    return info.value.code


def test_valid_token_gives_the_identity(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    identity = verifier.verify(issuer.token(email="a@example.org", email_verified=True))
    assert (identity.iss, identity.sub) == (ISS, "alice")
    assert identity.email == "a@example.org" and identity.email_verified


def test_keys_are_cached(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    verifier.verify(issuer.token())
    verifier.verify(issuer.token("bob"))
    assert len(issuer.fetches) == 2  # discovery + JWKS, once


@pytest.mark.parametrize(
    ("claims", "code"),
    [  # times are taken when the test runs, not when a long suite collected it
        (lambda: {"aud": "someone-else"}, "wrong_audience"),
        (lambda: {"exp": int(time.time()) - 120}, "expired"),
        (lambda: {"nbf": int(time.time()) + 600}, "not_yet_valid"),
        (lambda: {"iat": int(time.time()) + 600}, "not_yet_valid"),
        (lambda: {"iss": "https://evil.example"}, "untrusted_issuer"),
        (lambda: {"sub": ""}, "missing_claim"),
    ],
)
def test_bad_claims_are_refused(
    verifier: AssertionVerifier, issuer: FakeIssuer, claims: Callable[[], dict[str, Any]],
    code: str,
) -> None:
    assert rejected(verifier, issuer.token(**claims())) == code


def test_leeway_accepts_slightly_expired(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    assert verifier.verify(issuer.token(exp=int(time.time()) - 30)).sub == "alice"


def test_missing_exp_is_refused(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    key = issuer.keys.keys[issuer.keys.kid]
    claims = issuer.claims()
    del claims["exp"]
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": issuer.keys.kid})
    assert rejected(verifier, token) == "missing_claim"


def test_wrong_signature(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert rejected(verifier, issuer.token(key=other)) == "bad_signature"


def test_tampered_payload(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    head, _, sig = issuer.token().split(".")
    body = b64(json.dumps(issuer.claims(sub="mallory")).encode())
    assert rejected(verifier, f"{head}.{body}.{sig}") == "bad_signature"


def test_alg_none(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    assert rejected(verifier, unsigned(issuer.claims())) == "unsupported_alg"


def test_hs256_with_public_pem(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    token = hs256(issuer.claims(), issuer.keys.public_pem(), issuer.keys.kid)
    assert rejected(verifier, token) == "unsupported_alg"


def test_hs256_with_public_jwk(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    secret = json.dumps(issuer.keys.public_jwk()).encode()
    token = hs256(issuer.claims(), secret, issuer.keys.kid)
    assert rejected(verifier, token) == "unsupported_alg"


def test_garbage(verifier: AssertionVerifier) -> None:
    assert rejected(verifier, "not.a.jwt") == "invalid_assertion"


def test_unknown_kid_refreshes_once_then_refuses(
    verifier: AssertionVerifier, issuer: FakeIssuer, clock: Clock
) -> None:
    verifier.verify(issuer.token())
    clock.now += 60
    assert rejected(verifier, issuer.token(kid="no-such-key")) == "unknown_key"
    assert issuer.fetches.count(ISS + "/keys") == 2  # refreshed for the unknown kid
    assert rejected(verifier, issuer.token(kid="no-such-key")) == "unknown_key"
    assert issuer.fetches.count(ISS + "/keys") == 2  # but not again within min_refresh


def test_rotated_key_is_found_by_refresh(
    verifier: AssertionVerifier, issuer: FakeIssuer, clock: Clock
) -> None:
    verifier.verify(issuer.token())
    issuer.keys.rotate()
    clock.now += 31
    assert verifier.verify(issuer.token()).sub == "alice"


def test_ec_key_with_es256(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    issuer.extra_keys.append({**jwk, "kid": "ec-1", "use": "sig"})
    token = jwt.encode(issuer.claims(), key, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(token).sub == "alice"


def test_key_declared_for_another_alg(verifier: AssertionVerifier, issuer: FakeIssuer) -> None:
    key = issuer.keys.keys[issuer.keys.kid]
    token = jwt.encode(issuer.claims(), key, algorithm="PS256", headers={"kid": issuer.keys.kid})
    assert rejected(verifier, token) == "unsupported_alg"  # the JWKS says RS256 for this key


def test_unreachable_issuer_is_503(issuer: FakeIssuer) -> None:
    def down(url: str) -> Any:
        raise ValueError("connection refused")

    verifier = AssertionVerifier([IssuerConfig(ISS, AUD)], down)
    with pytest.raises(AssertionRejected) as info:
        verifier.verify(issuer.token())
    assert (info.value.status, info.value.code) == (503, "issuer_unavailable")


def test_discovery_naming_another_issuer_is_refused(issuer: FakeIssuer) -> None:
    def lying(url: str) -> Any:
        return {"issuer": "https://other.example", "jwks_uri": ISS + "/keys"}

    verifier = AssertionVerifier([IssuerConfig(ISS, AUD)], lying)
    with pytest.raises(AssertionRejected) as info:
        verifier.verify(issuer.token())
    assert info.value.code == "issuer_unavailable"


def test_jwks_never_yields_symmetric_keys() -> None:
    keys = parse_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})
    assert keys == {}
