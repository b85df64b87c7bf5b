"""A local development OpenID issuer: discovery document, JWKS, and minted RS256 ID tokens.

For demos and tests only. It signs whatever it is asked to, so a davsync server trusts it
only when its config names it in `[[issuers]]` (allowed because it is http:// on loopback).

    GET  /.well-known/openid-configuration   discovery: issuer, jwks_uri, token_endpoint
    GET  /jwks                               the public keys
    POST /token  {"sub": ..., "aud": ..., "email"?: ..., "ttl"?: seconds, ...claims}
                 -> {"id_token": "<JWT>", "token_type": "Bearer", "expires_in": ttl}

Python: `with DevIssuer() as issuer: token = issuer.mint("alice", "my-client")`.
Shell:  `davsync server dev-token --issuer URL --audience AUD alice` prints a token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from davsync.fsutil import write_atomic
from davsync.server.settings import is_loopback_host

log = logging.getLogger(__name__)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _thumbprint(key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a kid that is stable for the same key across restarts."""
    numbers = key.public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    canonical = json.dumps(
        {"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:12]).decode()


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """A persistent signing key (PEM, mode 0600), so tokens survive an issuer restart."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path}: not an RSA private key")
        return key
    key = _new_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, mode=0o600, replace=False)
    return key


class DevIssuer:
    """The issuer as a thread-served HTTP server on a loopback port (0: a free one)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, key: rsa.RSAPrivateKey | None = None
    ) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"the dev issuer only listens on loopback, not {host!r}")
        self.host = host
        self.port = port
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.kid = self.add_key(key or _new_key())
        self.jwks_fetches = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- keys and tokens -----------------------------------------------------------------------

    def add_key(self, key: rsa.RSAPrivateKey | None = None) -> str:
        """Publish another key in the JWKS; returns its kid. Signing keeps using `self.kid`."""
        key = key or _new_key()
        kid = _thumbprint(key.public_key())
        self.keys[kid] = key
        return kid

    def rotate(self) -> str:
        """Publish a new key and sign from now on with it (the old one stays published)."""
        self.kid = self.add_key()
        return self.kid

    def public_jwk(self, kid: str | None = None) -> dict[str, Any]:
        kid = kid or self.kid
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        return jwk

    def public_pem(self, kid: str | None = None) -> bytes:
        return self.keys[kid or self.kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk(kid) for kid in self.keys]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.url + "/jwks",
            "token_endpoint": self.url + "/token",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def mint(
        self,
        sub: str,
        aud: str,
        *,
        ttl: int = 300,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed RS256 ID token; `claims` override or add to the defaults (iss, exp, ...).

        `key` signs with another private key (a forged signature), `kid` names the key
        in the header (default: the current signing key).
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.url, "sub": sub, "aud": aud, "iat": now, "exp": now + ttl,
        }
        payload.update(claims)
        kid = kid or self.kid
        signer = key or self.keys.get(kid) or self.keys[self.kid]
        header = {"kid": kid, **(headers or {})}
        return jwt.encode(payload, signer, algorithm="RS256", headers=header)

    # -- serving -------------------------------------------------------------------------------

    def start(self) -> DevIssuer:
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="dev-issuer", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        """Foreground serving for the CLI (until KeyboardInterrupt/SIGTERM)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> DevIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(issuer: DevIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._json(200, issuer.discovery())
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                self._json(200, issuer.jwks())
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if self.path != "/token":
                self._json(404, {"error": "not_found"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                sub, aud = body.pop("sub"), body.pop("aud")
                ttl = int(body.pop("ttl", 300))
                if not isinstance(sub, str) or not isinstance(aud, str | list):
                    raise TypeError("sub must be a string, aud a string or list")
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error": "invalid_request", "error_description": str(exc)})
                return
            token = issuer.mint(sub, aud, ttl=ttl, **body)  # type: ignore[arg-type]
            self._json(200, {"id_token": token, "token_type": "Bearer", "expires_in": ttl})

        def _json(self, status: int, data: object) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("dev issuer: " + format, *args)

    return Handler


def request_token(issuer_url: str, sub: str, audience: str, **claims: Any) -> str:
    """Ask a running dev issuer for a token (what `davsync server dev-token` prints)."""
    host = httpx.URL(issuer_url).host
    if not is_loopback_host(host):
        raise ValueError(f"a dev issuer runs on loopback only, not {host!r}")
    response = httpx.post(
        issuer_url.rstrip("/") + "/token",
        json={"sub": sub, "aud": audience, **claims},
        timeout=10.0,
    )
    response.raise_for_status()
    return str(response.json()["id_token"])
