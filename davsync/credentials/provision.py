"""The provisioning client: trade an identity assertion (a JWT) for this device's DAV credentials.

Protocol: `POST provision_url` with `{"assertion", "device_name", "device_id"}` answers
`{"username", "password", "dav_url", "device_id"}` and, when the server's admin set one, the
daemon `mode` (it overrides `[daemon] mode`); errors are 400/401/403/429 with
`{"error", "error_description"}`. A device revokes itself with Basic auth at
`<scheme://host>/.well-known/davsync/revoke`. Answers are interpreted by pure functions;
`ProvisioningClient` only moves them over httpx.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from davsync.core.retry import parse_retry_after
from davsync.credentials.store import DeviceCredentials, SecretStore, load_id_token
from davsync.errors import AuthError, ConfigError, UnreachableError
from davsync.secret import Secret
from davsync.secret_command import run_secret_command

log = logging.getLogger(__name__)

REVOKE_PATH: Final = "/.well-known/davsync/revoke"
TOKEN_EXPIRY_MARGIN: Final = 30.0  # seconds: a token about to expire may die in flight
# The daemon modes an answer's optional `mode` may set (`[daemon] mode`'s values).
PROVISIONED_MODES: Final = ("both", "backup", "restore", "disabled")


class ProvisionError(AuthError):
    """The provisioning server refused; `status` and `retry_after` (seconds) say how and when."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ProvisionUnreachable(UnreachableError):
    """The provisioning server could not be reached or answered 5xx: try again later."""


class AssertionFailed(AuthError):
    """No identity assertion could be obtained (the command failed, or no usable cached token)."""


class LoginRequired(AssertionFailed):
    """The ID token from `davsync login` is missing or expired (and no assertion_command)."""


# --- pure interpretation -------------------------------------------------------------------


def _error_detail(body: bytes) -> str:
    """The server's own words, short; never more than it chose to put in error fields."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get(k))[:200] for k in ("error", "error_description") if data.get(k)]
    return ": ".join(parts)


_BLOCKED: Final = {"device_blocked": "device", "account_blocked": "account"}


def _error_code(body: bytes) -> str:
    """The answer's `error` code, or "" (for answers that are not the protocol's JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def interpret_provision(
    url: str, status: int, headers: Mapping[str, str], body: bytes, now: datetime
) -> DeviceCredentials:
    """Turn the provisioning answer into credentials, or raise the error a user can act on."""
    if status == 200:
        return _credentials_from(url, body)
    detail = _error_detail(body)
    said = f" ({detail})" if detail else ""
    if status == 400:
        raise ProvisionError(
            f"{url}: the server rejected the request as malformed{said}; check that "
            "provision_url points at a davsync provisioning endpoint",
            status,
        )
    if status == 401:
        raise ProvisionError(
            f"{url}: the server did not accept the identity assertion{said}; check "
            "[server] assertion_command, or run `davsync login` again",
            status,
        )
    blocked = _BLOCKED.get(_error_code(body)) if status == 403 else None
    if blocked:
        raise ProvisionError(
            f"{url}: the server's administrator has blocked this {blocked}; ask them to "
            "unblock it (local changes are kept)",
            status,
        )
    if status == 403:
        raise ProvisionError(
            f"{url}: this identity may not provision devices{said}; ask the server's "
            "administrator to allow it",
            status,
        )
    if status == 429:
        retry = parse_retry_after(headers.get("retry-after"), now)
        when = f"; retry in {retry:.0f} s" if retry is not None else "; retry later"
        raise ProvisionError(f"{url}: rate limited{said}{when}", status, retry)
    if status >= 500:
        raise ProvisionUnreachable(f"{url}: server error {status}{said}; try again later")
    raise ProvisionError(f"{url}: unexpected answer {status}{said}", status)


def _credentials_from(url: str, body: bytes) -> DeviceCredentials:
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    keys = ("username", "password", "dav_url", "device_id")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data[k] for k in keys
    ):
        raise ProvisionError(
            f"{url}: the answer lacks username, password, dav_url or device_id; is this a "
            "davsync provisioning endpoint?"
        )
    dav_url = data["dav_url"]
    if "@" in urlsplit(dav_url).netloc:  # never stored, logged or used: it may hold a secret
        raise ProvisionError(
            f"{url}: the answer's dav_url carries user info (user:password@); refused: "
            "ask the server's admin to correct its provisioning settings"
        )
    if not dav_url.startswith(("http://", "https://")):
        raise ProvisionError(
            f"{url}: the answer's dav_url {dav_url!r} is not an http(s) URL"
        )
    mode = data.get("mode")
    if mode is not None and mode not in PROVISIONED_MODES:
        raise ProvisionError(
            f"{url}: the answer's mode {str(mode)[:40]!r} is none of "
            f"{', '.join(PROVISIONED_MODES)}; is this davsync's provisioning server?"
        )
    return DeviceCredentials(
        username=data["username"],
        password=Secret(data["password"]),
        dav_url=data["dav_url"],
        device_id=data["device_id"],
        server=url,
        mode=mode,
    )


def revoke_url(provision_url: str) -> str:
    """The revoke endpoint lives at the root of the provisioning server's origin."""
    parts = urlsplit(provision_url)
    return urlunsplit((parts.scheme, parts.netloc, REVOKE_PATH, "", ""))


def token_expiry(token: Secret) -> float | None:
    """The `exp` claim (epoch seconds) of a JWT, read without verifying: the server verifies."""
    try:
        claims = jwt.decode(token.reveal(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def token_usable(token: Secret, now: float) -> bool:
    exp = token_expiry(token)
    return exp is not None and exp - TOKEN_EXPIRY_MARGIN > now


# --- assertion sources ---------------------------------------------------------------------


class AssertionSource(Protocol):
    """Where the identity assertion (a JWT) comes from; raises AssertionFailed when it cannot."""

    def assertion(self) -> Secret: ...


@dataclass
class CommandAssertion:
    """`[server] assertion_command`: the first line of its stdout is the JWT."""

    command: str

    def assertion(self) -> Secret:
        try:
            program = shlex.split(self.command)[0]
        except (ValueError, IndexError):
            raise ConfigError(
                f"[server] assertion_command: cannot parse {self.command!r}"
            ) from None
        if shutil.which(program) is None:
            raise ConfigError(f"[server] assertion_command: command not found: {program!r}")
        try:
            return run_secret_command(self.command, "[server] assertion_command")
        except ConfigError as exc:
            # The command ran and failed: the issuer refused or is down. That is exit 3 with
            # pending work kept, not a configuration error.
            raise AssertionFailed(
                f"{exc}; the identity assertion could not be obtained, nothing was changed"
            ) from None


@dataclass
class CachedIdToken:
    """The ID token `davsync login` stored, while it has not expired."""

    store: SecretStore
    clock: Callable[[], float] = time.time

    def assertion(self) -> Secret:
        token = load_id_token(self.store)
        if token is None:
            raise LoginRequired("not signed in: run `davsync login`")
        if not token_usable(token, self.clock()):
            raise LoginRequired("the sign-in from `davsync login` has expired: run `davsync login`")
        return token


def assertion_source(assertion_command: str | None, store: SecretStore) -> AssertionSource:
    """`[server] assertion_command` when configured, else the ID token from `davsync login`."""
    if assertion_command:
        return CommandAssertion(assertion_command)
    return CachedIdToken(store)


# --- the I/O edge --------------------------------------------------------------------------


class ProvisioningClient:
    """Talks to one provisioning server; raises ProvisionError / ProvisionUnreachable.

    `http` comes from the one client factory (`dav/http.py`, wired in `app/credentials.py`):
    the configured timeouts and TLS checking, no redirects followed."""

    def __init__(self, provision_url: str, http: httpx.Client) -> None:
        self.url = provision_url
        self.http = http

    def provision(self, assertion: Secret, device_name: str, device_id: str) -> DeviceCredentials:
        body = {"assertion": assertion.reveal(), "device_name": device_name, "device_id": device_id}
        log.info("provisioning device %r (%s) at %s", device_name, device_id, self.url)
        response = self._send("POST", self.url, json=body)
        return interpret_provision(
            self.url, response.status_code, response.headers, response.content, datetime.now(UTC)
        )

    def revoke(self, creds: DeviceCredentials) -> bool:
        """Ask the server to revoke this device; False when it no longer knew the credentials."""
        url = revoke_url(self.url)
        response = self._send("POST", url, auth=(creds.username, creds.password.reveal()))
        if response.status_code in (200, 204):
            return True
        if response.status_code in (401, 404):
            return False
        detail = _error_detail(response.content)
        if response.status_code >= 500:
            raise ProvisionUnreachable(f"{url}: server error {response.status_code} {detail}")
        raise ProvisionError(
            f"{url}: revoke answered {response.status_code} {detail}", response.status_code
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ProvisionUnreachable(
                f"{url}: no answer in time; check the network or raise [server] read_timeout"
            ) from None
        except httpx.TransportError as exc:
            raise ProvisionUnreachable(
                f"{url}: cannot reach the provisioning server ({type(exc).__name__}); check "
                "[server] provision_url and the network"
            ) from None
