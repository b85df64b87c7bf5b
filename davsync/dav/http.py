"""The one httpx client factory and the pieces every davsync HTTP client is made of.

Whatever talks HTTP (the DAV client, the provisioning client, the device grant) gets its
`httpx.Client` from `http_client`: the configured timeouts and TLS trust, no redirect followed
behind our back, every connection bounded by the request deadline (`bounds.install_deadline`),
and a seam (`wrap`) through which a transport wrapper (recording, fault injection) sees every
exchange. The DAV behaviour is composed of httpx's own extension points:

- `AuthenticatorAuth` (an `httpx.Auth`): Basic credentials from an `Authenticator`, refreshed
  at most once per client after a 401;
- `count_requests` / `origin_guard` (request event hooks): every exchange counted, and none
  sent off the configured origin, whatever URL the server pointed at;
- `RetryLoop`: one logical request sent again after transient failures, waiting as the one
  retry policy (`core/retry.py`) says; the caller words the failure, since it knows the request.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from davsync.core.retry import RETRY_AFTER_STATUSES, is_transient, retry_delay
from davsync.dav.api import Authenticator, RequestCounter, basic_authorization
from davsync.dav.bounds import SMALL, AnswerLimit, AnswerTooLarge, install_deadline

TransportWrapper = Callable[[httpx.BaseTransport], httpx.BaseTransport]
EventHook = Callable[[httpx.Request], None]


def http_client(
    *,
    verify: bool | ssl.SSLContext,
    connect_timeout: float,
    read_timeout: float,
    max_connections: int | None = None,
    transport: httpx.BaseTransport | None = None,
    wrap: TransportWrapper | None = None,
    auth: httpx.Auth | None = None,
    on_request: Sequence[EventHook] = (),
) -> httpx.Client:
    """An `httpx.Client` built the one way davsync builds them.

    `transport`: a replacement for the network (a test's MockTransport); `wrap`: a wrapper
    around whatever transport is used, also the proxy ones, so it sees every exchange;
    `on_request`: hooks run before every exchange (redirects and auth retries included)."""
    limits = (
        httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if max_connections is not None else httpx.Limits()
    )
    client = httpx.Client(
        transport=transport,
        verify=verify,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        limits=limits,
        follow_redirects=False,
        auth=auth,
        event_hooks={"request": list(on_request)},
    )
    install_deadline(client)
    if wrap is not None:
        _wrap_transports(client, wrap)
    return client


def _wrap_transports(client: httpx.Client, wrap: TransportWrapper) -> None:
    """Put `wrap` around the direct transport and every proxy mount. httpx has no public way
    to do this after it built its mounts from the environment; like `install_deadline`, this
    reaches in once, before the first request."""
    client._transport = wrap(client._transport)
    client._mounts = {
        pattern: None if mounted is None else wrap(mounted)
        for pattern, mounted in client._mounts.items()
    }


def count_requests(counter: RequestCounter) -> EventHook:
    """A request hook counting every exchange by method (`sync --json`'s `http_requests`)."""
    lock = threading.Lock()

    def count(request: httpx.Request) -> None:
        with lock:
            counter.add(request.method)

    return count


def origin_guard(check: Callable[[str], None]) -> EventHook:
    """A request hook that lets `check(url)` refuse an exchange before it is sent: the last
    line of defence behind the DAV client's own checks, for redirects and retries too."""

    def guard(request: httpx.Request) -> None:
        check(str(request.url))

    return guard


class AuthenticatorAuth(httpx.Auth):
    """HTTP Basic from an `Authenticator`, with the once-per-401 refresh.

    A 401 asks the authenticator for new credentials once per run: a refused identity must
    never become a loop. When the refreshed credentials are refused too, later 401s of that
    run are final at once. The final 401 is handed back to the caller, who knows what to tell
    the user. A process that syncs again and again calls `new_run` before each run, so that a
    device revoked hours later is re-provisioned then, once.
    """

    def __init__(
        self, authenticator: Authenticator, on_401: Callable[[httpx.Response], None] | None = None
    ) -> None:
        self.authenticator = authenticator
        self._on_401 = on_401 or (lambda response: None)
        self._lock = threading.Lock()
        self._refresh_result: bool | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = basic_authorization(self.authenticator)
        response = yield request
        if response.status_code != 401:
            return
        self._on_401(response)
        if not self._refresh():
            return
        # httpx reads a response the flow answers with a new request: bound it like any other.
        response.stream = _BoundedStream(response.stream, SMALL)
        request.headers["Authorization"] = basic_authorization(self.authenticator)
        response = yield request
        if response.status_code == 401:
            self._on_401(response)
            with self._lock:  # even fresh credentials fail: stop retrying 401s
                self._refresh_result = False

    def new_run(self) -> None:
        """Allow one refresh again (the next run's)."""
        with self._lock:
            self._refresh_result = None

    def _refresh(self) -> bool:
        """Ask the authenticator for new credentials once per instance; remember its answer."""
        with self._lock:
            if self._refresh_result is None:
                self._refresh_result = self.authenticator.refresh()
            return self._refresh_result

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the password and the Authorization value."""
        password = self.authenticator.credentials()[1].reveal()
        encoded = basic_authorization(self.authenticator).split(" ", 1)[1]
        return tuple(s for s in (password, encoded) if s)


class _BoundedStream(httpx.SyncByteStream):
    """A response body that raises AnswerTooLarge past `limit` bytes instead of filling memory."""

    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream, limit: AnswerLimit
                 ) -> None:
        assert isinstance(inner, httpx.SyncByteStream)
        self._inner = inner
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._inner:
            size += len(chunk)
            if size > self._limit.size:
                raise AnswerTooLarge(self._limit)
            yield chunk

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class Answered:
    """What `RetryLoop.run` ends with: the last response, how many exchanges it took, and
    whether it is a transient failure the retries could not get past."""

    response: httpx.Response
    attempts: int
    exhausted: bool


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RetryLoop:
    """Send one logical request again after transient failures, as `core.retry` says.

    `exchange` raises httpx.TransportError for a connection failure (retried), anything else
    to stop at once (a certificate does not fix itself). `retry_server_errors=False` retries
    only 429/503 (the server asking to slow down); `on_retry(status)` hears of each retry."""

    max_retries: int
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = _now
    jitter: Callable[[], float] = field(default=random.random)

    def run(
        self,
        exchange: Callable[[], httpx.Response],
        *,
        gave_up: Callable[[httpx.TransportError, int], Exception],
        retry_server_errors: bool = True,
        on_retry: Callable[[int | None], None] | None = None,
    ) -> Answered:
        attempt = 0
        while True:
            status: int | None
            try:
                response = exchange()
            except httpx.TransportError as exc:
                status, delay = None, self._delay(None, httpx.Headers(), attempt)
                if delay is None:
                    raise gave_up(exc, attempt + 1) from None
            else:
                status = response.status_code
                retryable = retry_server_errors or status in RETRY_AFTER_STATUSES
                delay = self._delay(status, response.headers, attempt) if retryable else None
                if delay is None:
                    return Answered(response, attempt + 1, retryable and is_transient(status))
            if on_retry is not None:
                on_retry(status)
            self.sleep(delay)
            attempt += 1

    def _delay(self, status: int | None, headers: httpx.Headers, attempt: int) -> float | None:
        return retry_delay(status, headers, attempt, self.max_retries, now=self.now(),
                           jitter=self.jitter())
