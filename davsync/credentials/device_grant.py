"""`davsync login` without a browser on this machine: the OAuth 2.0 Device Authorization Grant.

RFC 8628 against `[server] issuer`: discovery gives the device authorization and token
endpoints; the user opens the verification URI elsewhere and types the user code; we poll.
What to do after each token-endpoint answer is decided by the pure `decide()`; `DeviceGrant`
does the HTTP and takes its sleep and clock as arguments, so tests never wait.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from davsync.errors import AuthError, UnreachableError
from davsync.secret import Secret

log = logging.getLogger(__name__)

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL: Final = 5.0
SLOW_DOWN_STEP: Final = 5.0  # RFC 8628 section 3.5


class DeviceGrantError(AuthError):
    """The sign-in did not complete: denied, expired, or the issuer misbehaved."""


# --- the pure polling decisions ------------------------------------------------------------


@dataclass(frozen=True)
class TokenAnswer:
    """One token-endpoint answer, reduced to what the decision needs."""

    status: int
    error: str | None = None
    id_token: Secret | None = None


@dataclass(frozen=True)
class Poll:
    """Where polling stands: the current interval and when the device code dies (clock time)."""

    interval: float
    expires_at: float


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Done:
    id_token: Secret


@dataclass(frozen=True)
class Failed:
    reason: str


Decision = Wait | Done | Failed


def decide(poll: Poll, answer: TokenAnswer, now: float) -> tuple[Poll, Decision]:
    """The next step after `answer`, per RFC 8628 section 3.5."""
    if answer.status == 200:
        if answer.id_token:
            return poll, Done(answer.id_token)
        return poll, Failed(
            "the issuer answered without an id_token (is the scope 'openid' allowed "
            "for this client_id?)"
        )
    if answer.error == "slow_down":
        poll = Poll(poll.interval + SLOW_DOWN_STEP, poll.expires_at)
    elif answer.error == "access_denied":
        return poll, Failed("the sign-in was denied")
    elif answer.error == "expired_token":
        return poll, Failed(
            "the code expired before the sign-in was finished; run `davsync login` again"
        )
    elif answer.error != "authorization_pending":
        what = answer.error or f"HTTP {answer.status}"
        return poll, Failed(f"the issuer refused the device code ({what})")
    if now + poll.interval >= poll.expires_at:
        return poll, Failed(
            "the code expired before the sign-in was finished; run `davsync login` again"
        )
    return poll, Wait(poll.interval)


# --- the I/O edge --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    device_authorization: str
    token: str


@dataclass(frozen=True)
class Authorization:
    """What the user needs to see, and the device code we poll with (never shown)."""

    device_code: Secret
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


class DeviceGrant:
    """Runs the grant against one issuer for one client_id; `show` prints to the user."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        http: httpx.Client,
        show: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.http = http
        self.show = show
        self.sleep = sleep
        self.clock = clock

    def run(self) -> Secret:
        """Discover, show the code, poll until an ID token (or raise DeviceGrantError)."""
        endpoints = self.discover()
        auth = self.start(endpoints)
        if auth.verification_uri_complete:
            self.show(f"To sign in, open {auth.verification_uri_complete}")
            self.show(f"(or open {auth.verification_uri} and enter the code {auth.user_code})")
        else:
            self.show(
                f"To sign in, open {auth.verification_uri} and enter the code {auth.user_code}"
            )
        return self.wait_for_token(endpoints, auth)

    def discover(self) -> Endpoints:
        url = f"{self.issuer}/.well-known/openid-configuration"
        data = self._json(self._send("GET", url), url)
        dae, token = data.get("device_authorization_endpoint"), data.get("token_endpoint")
        if not isinstance(dae, str) or not isinstance(token, str):
            raise DeviceGrantError(
                f"{url}: the issuer does not offer the device authorization grant "
                "(no device_authorization_endpoint/token_endpoint); use assertion_command instead"
            )
        return Endpoints(dae, token)

    def start(self, endpoints: Endpoints) -> Authorization:
        url = endpoints.device_authorization
        response = self._send("POST", url, data={"client_id": self.client_id, "scope": "openid"})
        if response.status_code != 200:
            raise DeviceGrantError(
                f"{url}: device authorization refused ({_oauth_error(response)}); check "
                "[server] client_id"
            )
        data = self._json(response, url)
        try:
            return Authorization(
                device_code=Secret(str(data["device_code"])),
                user_code=str(data["user_code"]),
                verification_uri=str(data["verification_uri"]),
                verification_uri_complete=data.get("verification_uri_complete"),
                expires_in=float(data.get("expires_in", 600)),
                interval=float(data.get("interval", DEFAULT_INTERVAL)),
            )
        except (KeyError, TypeError, ValueError):
            raise DeviceGrantError(f"{url}: incomplete device authorization answer") from None

    def wait_for_token(self, endpoints: Endpoints, auth: Authorization) -> Secret:
        poll = Poll(auth.interval, self.clock() + auth.expires_in)
        form = {
            "grant_type": GRANT_TYPE,
            "device_code": auth.device_code.reveal(),
            "client_id": self.client_id,
        }
        while True:
            self.sleep(poll.interval)  # the RFC asks for one interval before the first poll too
            response = self._send("POST", endpoints.token, data=form)
            poll, decision = decide(poll, _token_answer(response), self.clock())
            if isinstance(decision, Done):
                return decision.id_token
            if isinstance(decision, Failed):
                raise DeviceGrantError(f"{self.issuer}: {decision.reason}")
            log.debug("sign-in pending; polling again in %.0f s", decision.seconds)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"{url}: cannot reach the identity provider ({type(exc).__name__}); check "
                "[server] issuer and the network"
            ) from None

    @staticmethod
    def _json(response: httpx.Response, url: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            raise DeviceGrantError(f"{url}: unexpected answer {response.status_code}")
        return data


def _oauth_error(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(data, dict):
        return f"HTTP {response.status_code}"
    parts = [str(data[k])[:200] for k in ("error", "error_description") if data.get(k)]
    return ": ".join(parts) or f"HTTP {response.status_code}"


def _token_answer(response: httpx.Response) -> TokenAnswer:
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    token = data.get("id_token")
    error = data.get("error")
    return TokenAnswer(
        status=response.status_code,
        error=error if isinstance(error, str) else None,
        id_token=Secret(token) if isinstance(token, str) and token else None,
    )
