"""The WSGI application: the provisioning endpoints in front of `radicale.Application`.

`/.well-known/davsync/provision` (POST: provision a device, DELETE: delete the account),
`/.well-known/davsync/revoke` (POST with the device's Basic credentials) and
`/.well-known/davsync/app-password` (POST: an app password for a standard client) are answered
here; every other request goes to Radicale, unless its client address, or the account it names,
has used up its failed-login budget (429). Protocol details: docs/provisioning.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import radicale.config
import radicale.storage
from radicale.app import Application

from davsync.errors import ConfigError
from davsync.server.accounts import delete_account
from davsync.server.assertions import AssertionRejected, AssertionVerifier, Identity
from davsync.server.logincache import LoginCache, cache_key
from davsync.server.protocol import (
    APP_PASSWORD_PATH,
    MAX_BODY,
    PROVISION_PATH,
    REVOKE_PATH,
    ProtocolError,
    allowed,
    malformed,
    parse_app_password,
    parse_assertion,
    parse_json_object,
    parse_provision,
)
from davsync.server.radicale_auth import auth_class
from davsync.server.ratelimit import RateLimiter
from davsync.server.settings import ServerSettings
from davsync.server.store import Blocked, CredentialStore, TooManyDevices, derive_username

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
            413: "Content Too Large", 429: "Too Many Requests", 503: "Service Unavailable"}


def radicale_configuration(settings: ServerSettings, cache: LoginCache | None = None) -> Any:
    """Radicale's settings: our auth plugin, owner-only rights, storage under data_dir."""
    configuration = radicale.config.load()
    configuration.update(
        {
            "auth": {
                "type": auth_class(cache or LoginCache(settings.login_cache_seconds)),
                "delay": str(settings.failed_login_delay),
                "cache_logins": "False",
            },
            "rights": {"type": "owner_only"},
            "storage": {"filesystem_folder": str(settings.collections_dir)},
            "web": {"type": "none"},
            "logging": {"mask_passwords": "True"},
        },
        "davsync server",
        privileged=True,
    )
    try:
        configuration.update(settings.radicale, f"{settings.path} [radicale]")
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"{settings.path} [radicale]: {exc}") from None
    return configuration


class ServerApp:
    """The composed WSGI app; `clock` is monotonic seconds (rate limits)."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        verifier: AssertionVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Radicale would create collection-root itself, with a warning at every first start.
        (settings.collections_dir / "collection-root").mkdir(parents=True, exist_ok=True,
                                                             mode=0o700)
        self.login_cache = LoginCache(settings.login_cache_seconds)
        configuration = radicale_configuration(settings, self.login_cache)
        self.radicale = Application(configuration)
        self.storage = radicale.storage.load(configuration)
        self.store = CredentialStore(settings.credentials_db)
        self.verifier = verifier or AssertionVerifier(
            settings.issuers, min_refresh=settings.jwks_min_refresh
        )
        self.provision_limit = RateLimiter(settings.provision_per_minute)
        self.login_limit = RateLimiter(settings.failed_logins_per_minute)
        self.account_limit = RateLimiter(settings.failed_logins_per_account_per_minute)
        self.clock = clock

    def close(self) -> None:
        self.store.close()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.rstrip("/") in (PROVISION_PATH, REVOKE_PATH, APP_PASSWORD_PATH):
            return self._endpoint(path.rstrip("/"), environ, start_response)
        return self._dav(environ, start_response)

    def _address(self, environ: Environ) -> str:
        """The client's address; behind a proxy, the one it appended to X-Forwarded-For."""
        if self.settings.behind_proxy:
            forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", "")).rsplit(",", 1)[-1].strip()
            if forwarded:
                return forwarded
        return str(environ.get("REMOTE_ADDR") or "unknown")

    # -- DAV -----------------------------------------------------------------------------------

    def _dav(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        address = self._address(environ)
        credentials = _basic_credentials(environ)
        refusal = self._login_refusal(address, credentials)
        if refusal is not None:
            return _send(_error_answer(refusal), start_response)

        def watch(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            if status.startswith("401") and environ.get("HTTP_AUTHORIZATION"):
                self._failed_login(address, credentials[0] if credentials else None)
            return start_response(status, headers, *exc)

        return self.radicale(environ, watch)

    def _login_refusal(
        self, address: str, credentials: tuple[str, str] | None
    ) -> _RateLimited | None:
        """429 while the address, or the account named, has no failed-login budget left.

        A client whose password was checked a moment ago (it is in the login cache) passes the
        account limit, so guessing at an account does not lock its own devices out.
        """
        now = self.clock()
        if self.login_limit.blocked(address, now):
            return _RateLimited(self.login_limit.retry_after(address, now),
                                "too many failed logins from this address")
        if credentials is None or not self.account_limit.blocked(credentials[0], now):
            return None
        if self._recently_signed_in(credentials):
            return None
        return _RateLimited(self.account_limit.retry_after(credentials[0], now),
                            "too many failed logins for this account")

    def _recently_signed_in(self, credentials: tuple[str, str]) -> bool:
        key = cache_key(*credentials)
        return self.login_cache.get(key, self.store.generation(), time.monotonic()) is not None

    def _failed_login(self, address: str, username: str | None) -> None:
        """Count a refused password against the address and the account; say so once when a
        budget runs out (never the password)."""
        now = self.clock()
        for limiter, key, what in ((self.login_limit, address, "address"),
                                   (self.account_limit, username, "account")):
            if key is None:
                continue
            was_blocked = limiter.blocked(key, now)
            limiter.record(key, now)
            if not was_blocked and limiter.blocked(key, now):
                log.warning("too many failed logins for %s %s: refusing it for %d s",
                            what, key, limiter.retry_after(key, now))

    # -- provisioning endpoints ----------------------------------------------------------------

    def _endpoint(self, path: str, environ: Environ, start_response: StartResponse
                  ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            if path in (REVOKE_PATH, APP_PASSWORD_PATH):
                if method != "POST":
                    return _send(_not_allowed("POST"), start_response)
                answer = (self._revoke if path == REVOKE_PATH else self._app_password)(environ)
            elif method == "POST":
                answer = self._provision(environ)
            elif method == "DELETE":
                answer = self._delete(environ)
            else:
                answer = _not_allowed("POST, DELETE")
        except ProtocolError as exc:
            answer = _error_answer(exc)
        return _send(answer, start_response)

    def _limit(self, environ: Environ) -> None:
        address = self._address(environ)
        if not self.provision_limit.allow(address, self.clock()):
            raise _RateLimited(self.provision_limit.retry_after(address, self.clock()))

    def _identity(self, assertion: str) -> Identity:
        try:
            return self.verifier.verify(assertion)
        except AssertionRejected as exc:
            log.info("refused assertion: %s (%s)", exc.code, exc.description)
            raise ProtocolError(exc.status, exc.code, exc.description) from None

    def _allowed_identity(self, assertion: str) -> Identity:
        """The verified identity, if the issuer's sign-up policy lets it in (else 403)."""
        identity = self._identity(assertion)
        issuer = self.verifier.issuer_config(identity.iss)
        if not allowed(identity.sub, identity.email, identity.email_verified,
                       issuer.allowed_subjects, issuer.allowed_email_domains):
            log.info("refused sign-up of %s at %s: not in allowed_subjects/allowed_email_domains",
                     identity.sub, identity.iss)
            raise ProtocolError(403, "not_allowed",
                                "this account is not allowed to use this server; ask its admin")
        return identity

    def _provision(self, environ: Environ) -> _Answer:
        self._limit(environ)
        request = parse_provision(_body(environ))
        identity = self._allowed_identity(request.assertion)
        try:
            username, password = self.store.provision(
                identity.iss, identity.sub, request.device_id, request.device_name,
                email=identity.email, max_devices=self.settings.max_devices,
            )
        except TooManyDevices as exc:
            raise ProtocolError(403, "too_many_devices", str(exc)) from None
        except Blocked as exc:
            raise _blocked(exc, "provisioning") from None
        log.info("provisioned device %r (%s) of %s", request.device_id, request.device_name,
                 username)
        answer = {
            "username": username,
            "password": password.reveal(),
            "dav_url": self._dav_url(environ),
            "device_id": request.device_id,
        }
        mode = self.store.mode_of(username)
        if mode is not None:  # set by `davsync server mode`; else the device's config decides
            answer["mode"] = mode
        return _Answer(200, answer)

    def _app_password(self, environ: Environ) -> _Answer:
        """Self-service: a signed-in user gets an app password for a standard client."""
        self._limit(environ)
        request = parse_app_password(_body(environ))
        identity = self._allowed_identity(request.assertion)
        username = derive_username(identity.iss, identity.sub)
        try:
            app_id, password = self.store.add_app_password(
                username, request.label, identity=(identity.iss, identity.sub, identity.email),
                max_devices=self.settings.max_devices,
            )
        except TooManyDevices as exc:
            raise ProtocolError(403, "too_many_devices", str(exc)) from None
        except Blocked as exc:
            raise _blocked(exc, "an app password") from None
        log.info("created app password %s (%s) of %s", app_id, request.label, username)
        return _Answer(200, {
            "username": username,
            "password": password.reveal(),
            "dav_url": self._dav_url(environ),
            "id": app_id,
            "label": request.label,
        })

    def _delete(self, environ: Environ) -> _Answer:
        self._limit(environ)
        identity = self._identity(parse_assertion(parse_json_object(_body(environ))))
        username = self.store.username_for(identity.iss, identity.sub)
        if username is None:
            raise ProtocolError(404, "no_account", "there is no account for this identity")
        delete_account(self.store, self.storage, self.settings.collections_dir, username)
        return _Answer(200, {"username": username, "deleted": True})

    def _revoke(self, environ: Environ) -> _Answer:
        address = self._address(environ)
        credentials = _basic_credentials(environ)
        refusal = self._login_refusal(address, credentials)
        if refusal is not None:
            raise refusal
        device_id = None
        if credentials is not None:
            device_id = self.store.check_password(*credentials)
        if credentials is None or device_id is None:
            if credentials is not None:
                self._failed_login(address, credentials[0])
            raise ProtocolError(401, "invalid_credentials",
                                "send this device's DAV username and password (HTTP Basic)")
        self.store.revoke(credentials[0], device_id)
        log.info("device %r of %s revoked itself", device_id, credentials[0])
        return _Answer(200, {"username": credentials[0], "device_id": device_id, "revoked": True})

    def _dav_url(self, environ: Environ) -> str:
        if self.settings.public_url:
            return self.settings.public_url
        scheme = environ.get("wsgi.url_scheme", "http")
        forwarded = environ.get("HTTP_X_FORWARDED_PROTO")
        if self.settings.behind_proxy and forwarded in ("http", "https"):
            scheme = forwarded
        host = environ.get("HTTP_HOST") or (
            f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        )
        return f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}/"


class _RateLimited(ProtocolError):
    def __init__(self, retry_after: int, why: str = "too many requests") -> None:
        super().__init__(429, "rate_limited", f"{why}; retry in {retry_after} s")
        self.retry_after = retry_after


def _error_answer(exc: ProtocolError) -> _Answer:
    return _Answer(exc.status, exc.body(), _extra_headers(exc))


def _extra_headers(exc: ProtocolError) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, _RateLimited):
        return (("Retry-After", str(exc.retry_after)),)
    if exc.status == 401 and exc.code == "invalid_credentials":
        return (("WWW-Authenticate", 'Basic realm="davsync", charset="UTF-8"'),)
    return ()


def _blocked(exc: Blocked, what: str) -> ProtocolError:
    """403 `device_blocked` / `account_blocked`; logged, since it may be a stolen device."""
    log.warning("refused %s for %s: blocked by the admin", what,
                f"device {exc.device_id!r} of {exc.username}" if exc.device_id else exc.username)
    return ProtocolError(
        403, f"{exc.scope}_blocked",
        f"the server's administrator blocked this {exc.scope}; ask them to unblock it",
    )


def _not_allowed(methods: str) -> _Answer:
    return _Answer(405, {"error": "invalid_request",
                         "error_description": f"use {methods} on this endpoint"},
                   (("Allow", methods),))


def _body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise malformed("Content-Length is not a number") from None
    if length <= 0:
        raise malformed("the request needs a JSON body")
    if length > MAX_BODY:
        raise ProtocolError(413, "invalid_request", f"the body is larger than {MAX_BODY} bytes")
    return bytes(environ["wsgi.input"].read(length))


def _basic_credentials(environ: Environ) -> tuple[str, str] | None:
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user and password else None


def _send(answer: _Answer, start_response: StartResponse) -> list[bytes]:
    raw = json.dumps(answer.body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(raw))),
        ("Cache-Control", "no-store"),
        *answer.headers,
    ]
    start_response(f"{answer.status} {_REASONS.get(answer.status, 'Error')}", headers)
    return [raw]
