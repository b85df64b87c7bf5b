"""Verifying OIDC ID tokens (the provisioning "assertion") against the trusted issuers.

Checks, in order: a signed JWT with an allowed asymmetric `alg` (never `none`, never HMAC),
`iss` among the configured issuers, a signing key from the issuer's JWKS (found via its OpenID
discovery document, cached, refreshed at most every `min_refresh` seconds when an unknown
`kid` appears), the signature, `aud` equal to the issuer's client id, `exp`/`nbf`/`iat` with a
60 s leeway, and a non-empty `sub`. All network I/O goes through the `fetch_json` callable,
so tests hand in their own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
    PyJWKError,
    PyJWTError,
)

from davsync.server.settings import IssuerConfig, check_fetch_url

log = logging.getLogger(__name__)

ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
LEEWAY = 60.0
JWKS_MAX_AGE = 3600.0  # re-read the key set hourly even without an unknown kid (key removal)

FetchJson = Callable[[str], Any]


class AssertionRejected(Exception):
    """An assertion was refused; `code` is the protocol's error code, `status` the HTTP status."""

    def __init__(self, code: str, description: str, status: int = 401) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


@dataclass(frozen=True)
class Identity:
    """Who a verified assertion speaks for."""

    iss: str
    sub: str
    email: str | None
    email_verified: bool
    claims: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class SigningKey:
    """One JWKS key; `alg` is what the JWKS declares for it (None: any alg of its type)."""

    jwk: jwt.PyJWK
    alg: str | None

    def fits(self, alg: str) -> bool:
        if self.alg is not None:
            return self.alg == alg
        kty = {"R": "RSA", "P": "RSA", "E": "EC"}.get(alg[0], "OKP")
        return bool(self.jwk.key_type == kty)


@dataclass
class _KeySet:
    keys: dict[str, SigningKey]
    fetched: float


def httpx_fetch_json(timeout: float = 10.0) -> FetchJson:
    """The production fetcher: GET with httpx, https only (http on loopback), JSON body."""

    def fetch(url: str) -> Any:
        problem = check_fetch_url(url)
        if problem:
            raise ValueError(f"{url}: {problem}")
        response = httpx.get(url, timeout=timeout, follow_redirects=False,
                             headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()

    return fetch


class AssertionVerifier:
    """Verifies ID tokens for the configured issuers; thread-safe, caches each issuer's JWKS."""

    def __init__(
        self,
        issuers: tuple[IssuerConfig, ...] | list[IssuerConfig],
        fetch_json: FetchJson | None = None,
        *,
        min_refresh: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuers = {i.issuer: i for i in issuers}
        self.fetch_json = fetch_json or httpx_fetch_json()
        self.min_refresh = min_refresh
        self.clock = clock
        self._keysets: dict[str, _KeySet] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Identity:
        """The identity in `token`, or AssertionRejected saying exactly what is wrong."""
        header, unverified = _peek(token)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise AssertionRejected(
                "unsupported_alg",
                f"alg {alg!r} is not accepted; use one of {', '.join(ALLOWED_ALGS)}",
            )
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss.rstrip("/")) if isinstance(iss, str) else None
        if issuer is None or not isinstance(iss, str):
            raise AssertionRejected("untrusted_issuer", f"issuer {iss!r} is not trusted here")
        key = self._key(issuer, header.get("kid"), str(alg))
        claims = _decode(token, key, str(alg), issuer, iss)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AssertionRejected("missing_claim", "the token has no 'sub' (subject) claim")
        email = claims.get("email")
        return Identity(
            iss=issuer.issuer,
            sub=sub,
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            claims=claims,
        )

    def issuer_config(self, iss: str) -> IssuerConfig:
        return self.issuers[iss]

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, issuer: IssuerConfig, kid: object, alg: str) -> SigningKey:
        if kid is not None and not isinstance(kid, str):
            raise AssertionRejected("invalid_assertion", "the token header's 'kid' is not a string")
        with self._lock:
            keyset = self._keysets.get(issuer.issuer)
            now = self.clock()
            stale = keyset is None or now - keyset.fetched > JWKS_MAX_AGE
            if stale or (_pick(keyset, kid, alg) is None and self._may_refresh(keyset, now)):
                keyset = self._refresh(issuer, now)
        key = _pick(keyset, kid, alg)
        if key is None:
            raise AssertionRejected(
                "unknown_key",
                f"issuer {issuer.issuer} has no signing key with kid {kid!r} for {alg}",
            )
        return key

    def _may_refresh(self, keyset: _KeySet | None, now: float) -> bool:
        return keyset is None or now - keyset.fetched >= self.min_refresh

    def _refresh(self, issuer: IssuerConfig, now: float) -> _KeySet:
        try:
            keyset = _KeySet(self._fetch_keys(issuer), now)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, PyJWKError) as exc:
            log.warning("cannot load the signing keys of issuer %s: %s", issuer.issuer, exc)
            old = self._keysets.get(issuer.issuer)
            if old is not None:
                return old  # keep serving with the keys we had
            raise AssertionRejected(
                "issuer_unavailable",
                f"cannot load the signing keys of issuer {issuer.issuer}; try again later",
                status=503,
            ) from None
        self._keysets[issuer.issuer] = keyset
        log.info("loaded %d signing keys of issuer %s", len(keyset.keys), issuer.issuer)
        return keyset

    def _fetch_keys(self, issuer: IssuerConfig) -> dict[str, SigningKey]:
        discovery = self.fetch_json(issuer.issuer + "/.well-known/openid-configuration")
        if not isinstance(discovery, dict):
            raise ValueError("the discovery document is not a JSON object")
        if str(discovery.get("issuer", "")).rstrip("/") != issuer.issuer:
            raise ValueError(f"the discovery document names issuer {discovery.get('issuer')!r}")
        jwks_uri = discovery["jwks_uri"]
        problem = check_fetch_url(str(jwks_uri))
        if problem:
            raise ValueError(f"jwks_uri {jwks_uri!r} {problem}")
        return parse_jwks(self.fetch_json(str(jwks_uri)))


def parse_jwks(document: Any) -> dict[str, SigningKey]:
    """Signing keys by kid ("" for a key without one); skips keys we cannot or must not use."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document has no 'keys' list")
    keys: dict[str, SigningKey] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        if data.get("kty") == "oct" or data.get("alg") not in (None, *ALLOWED_ALGS):
            continue  # never a symmetric key: the JWKS is public
        try:
            keys[str(data.get("kid", ""))] = SigningKey(jwt.PyJWK(data), data.get("alg"))
        except PyJWKError as exc:
            log.debug("skipping JWKS key %r: %s", data.get("kid"), exc)
    return keys


def _pick(keyset: _KeySet | None, kid: str | None, alg: str) -> SigningKey | None:
    if keyset is None:
        return None
    if kid is not None:
        return keyset.keys.get(kid)
    candidates = [k for k in keyset.keys.values() if k.fits(alg)]
    return candidates[0] if len(candidates) == 1 else None


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims WITHOUT verification: only to choose the issuer and key."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (InvalidTokenError, ValueError, json.JSONDecodeError) as exc:
        raise AssertionRejected("invalid_assertion", f"not a well-formed JWT: {exc}") from None
    if not isinstance(claims, dict):
        raise AssertionRejected("invalid_assertion", "the JWT payload is not a JSON object")
    return header, claims


_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (InvalidSignatureError, "bad_signature", "the signature does not verify"),
    (ExpiredSignatureError, "expired", "the token has expired (exp)"),
    (ImmatureSignatureError, "not_yet_valid", "the token is not valid yet (nbf/iat)"),
    (InvalidIssuedAtError, "invalid_assertion", "the 'iat' claim is not a number"),
    (InvalidAudienceError, "wrong_audience", "the token's audience (aud) is not this server's"),
    (MissingRequiredClaimError, "missing_claim", "a required claim is missing"),
)


def _decode(
    token: str, key: SigningKey, alg: str, issuer: IssuerConfig, iss: str
) -> dict[str, Any]:
    if not key.fits(alg):
        raise AssertionRejected(
            "unsupported_alg", f"signing key {key.jwk.key_id!r} cannot be used with {alg}"
        )
    try:
        return jwt.decode(
            token,
            key.jwk.key,
            algorithms=[alg],
            audience=issuer.client_id,
            issuer=iss,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except PyJWTError as exc:
        for kind, code, text in _ERRORS:
            if isinstance(exc, kind):
                detail = f": {exc}" if kind is MissingRequiredClaimError else ""
                raise AssertionRejected(code, text + detail) from None
        raise AssertionRejected("invalid_assertion", f"the token is not valid: {exc}") from None
