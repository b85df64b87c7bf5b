"""DavClient: one DAV server account over httpx, for CardDAV and CalDAV; `Collection`
(`collection.py`) and discovery (`discovery.py`, which also opens a collection by its URL)
send every request through it.

Every request goes through `DavClient.request`, composed of the httpx pieces in `http.py`: it
refuses any URL off the configured origin (no credential, no data), adds Basic credentials and
refreshes them once on a 401 (`AuthenticatorAuth`), counts every exchange, bounds its time and
the size of its answer (`bounds.py`), retries transient failures with the one policy
(`core/retry.py`, `RetryLoop`), and turns transport failures into davsync errors (worded in
`failures.py`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Final
from urllib.parse import urljoin

import httpx

from davsync.core.retry import RETRY_AFTER_STATUSES
from davsync.dav import failures
from davsync.dav.api import (
    DEFAULT_REQUEST_TIMEOUT,
    Authenticator,
    DavError,
    RequestCounter,
)
from davsync.dav.bounds import (
    SMALL,
    AnswerLimit,
    AnswerTooLarge,
    RequestOverdue,
    deadline,
    past_deadline,
    read_bounded,
)
from davsync.dav.hrefs import (
    origin,
    same_origin,
    strip_userinfo,
)
from davsync.dav.http import (
    Answered,
    AuthenticatorAuth,
    RetryLoop,
    TransportWrapper,
    count_requests,
    http_client,
    origin_guard,
)
from davsync.dav.quirks import (
    UNKNOWN_SERVER,
    ServerInfo,
    identify,
)
from davsync.dav.tls import tls_context

log = logging.getLogger(__name__)

# Reads a streamed 207 answer (`request(consume=...)`).
Consumer = Callable[[httpx.Response], None]
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5


class DavClient:
    """One DAV server account: a keep-alive connection pool plus the credentials.

    Thread-safe: multiget batches run on a small pool sharing this client. Refreshing
    credentials happens at most once per run: a process that runs again and again on one
    client (and one connection pool) calls `new_run` before each.
    """

    def __init__(
        self,
        url: str,
        auth: Authenticator,
        *,
        verify_tls: bool = True,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        concurrency: int = 4,
        multiget_batch: int = 50,
        max_retries: int = 4,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        counter: RequestCounter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tls: ssl.SSLContext | None = None,
        wrap_transport: TransportWrapper | None = None,
    ) -> None:
        """`tls`: a context already built from `verify_tls` (by the early probe), so that the
        CA bundle is loaded once per run. `request_timeout`: the most one HTTP exchange may
        take, from sending to the answer's last byte (a retry is a new exchange).
        `wrap_transport`: a transport wrapper that sees every exchange (recording)."""
        self.url = strip_userinfo(url)
        self.origin = origin(url)
        self.counter = counter if counter is not None else RequestCounter()
        self.server: ServerInfo = UNKNOWN_SERVER
        self.concurrency = max(1, concurrency)
        self.multiget_batch = max(1, multiget_batch)
        self._auth = AuthenticatorAuth(auth, on_401=self._learn_from_401)
        self._request_timeout = request_timeout
        self._retry = RetryLoop(max_retries, sleep)
        self._pool_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._http = http_client(
            transport=transport,
            wrap=wrap_transport,
            # Loading the CA bundle costs ~80 ms of a ~0.9 s no-op run; a plain-http origin
            # never does TLS (redirects are followed only within this origin).
            verify=(tls or tls_context(verify_tls)) if self.origin.startswith("https:") else False,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=self.concurrency,
            auth=self._auth,
            on_request=(origin_guard(self._check_origin), count_requests(self.counter)),
        )

    # -- lifecycle -------------------------------------------------------------------------

    def new_run(self) -> None:
        """Start another run on this client: one credential refresh is allowed again."""
        self._auth.new_run()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._http.close()

    def __enter__(self) -> DavClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="davsync-dav")
            return self._pool

    # -- what the client learned ---------------------------------------------------------

    def learn(self, server: ServerInfo) -> None:
        """Remember what server this is, the first time something tells us."""
        if self.server == UNKNOWN_SERVER and server != UNKNOWN_SERVER:
            self.server = server

    # -- the one place that does network I/O ------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
        retry_server_errors: bool = True,
        limit: AnswerLimit = SMALL,
        on_retry: Callable[[int | None], None] | None = None,
        consume: Consumer | None = None,
    ) -> httpx.Response:
        """Send one logical request: credentials, counting, retries, one credential refresh.

        Returns any answer that is not 401 or transient, its body read (at most `limit`);
        raises DavAuthError, DavUnreachable (connection failures, 429/503 after all retries,
        an exchange over the request deadline) or DavError (another origin, an answer over
        `limit`, other 5xx after all retries). `retry_server_errors=False` gives up on
        500/502/504 at once (used while bisecting a failing multiget, where the failure is the
        item, not the weather). `on_retry(status)` hears of each retry (None: a connection
        failure), so a writer can learn that the server is contended. `consume`: a 207 answer
        is handed to it as it streams (within the request deadline, never retried once begun:
        what it read may already be in use) and comes back with an empty body; other answers
        are read as usual.
        """
        self._check_origin(url)
        for redirects in range(_MAX_REDIRECTS + 2):
            answered = self._retry.run(
                partial(self._send, method, url, headers, content, limit, consume),
                gave_up=partial(failures.gave_up, self.origin, method, url),
                retry_server_errors=retry_server_errors, on_retry=on_retry,
            )
            response = answered.response
            if not (follow_redirects and response.status_code in _REDIRECTS
                    and "location" in response.headers):
                return self._final(method, url, answered)
            url = self._redirect_target(url, response.headers["location"], redirects + 1)
        raise AssertionError("unreachable: _redirect_target stops the loop")

    def _final(self, method: str, url: str, answered: Answered) -> httpx.Response:
        """The answer to hand back, or the error for a refused login or a failure the
        retries could not get past."""
        response, status = answered.response, answered.response.status_code
        if status == 401:
            raise failures.refused_credentials(
                self.origin, self._auth.authenticator.credentials()[0]
            )
        if not answered.exhausted:
            return response
        if status in RETRY_AFTER_STATUSES:
            raise failures.overloaded(self.origin, method, url, status, answered.attempts)
        raise self.failure(method, url, response, f" after {answered.attempts} attempt(s)")

    def _learn_from_401(self, response: httpx.Response) -> None:
        self.learn(identify(www_authenticate=response.headers.get("www-authenticate")))

    def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None, content: bytes | None,
        limit: AnswerLimit, consume: Consumer | None = None,
    ) -> httpx.Response:
        """One HTTP exchange within the request deadline, its answer read up to `limit` (or
        a 207 handed to `consume`)."""
        request = self._http.build_request(method, url, headers=headers, content=content)
        try:
            with deadline(self._request_timeout):
                response = self._http.send(request, stream=True)
                if consume is None or response.status_code != 207:
                    return read_bounded(response, limit)
                return self._consumed(method, url, response, consume)
        except httpx.TransportError as exc:
            refused = failures.tls_failure(exc)
            if refused is None:
                raise  # the retry loop's to judge
            # a certificate does not fix itself: no retries
            raise failures.tls_refused(self.origin, refused) from None
        except RequestOverdue:
            raise failures.overdue(self.origin, method, url, self._request_timeout) from None
        except AnswerTooLarge as exc:
            raise failures.too_large(self.origin, method, url, exc) from None

    def _consumed(
        self, method: str, url: str, response: httpx.Response, consume: Consumer
    ) -> httpx.Response:
        """Hand a streamed 207 to `consume`. A connection lost part-way is not retried (the
        consumer may already have handed items on): it ends the request, as the deadline."""
        try:
            consume(response)
        except httpx.TransportError as exc:
            if past_deadline():
                raise RequestOverdue from None
            raise failures.connection_lost(self.origin, method, url,
                                           type(exc).__name__) from None
        finally:
            response.close()
        return httpx.Response(207, request=response.request)

    def _check_origin(self, url: str) -> None:
        """Refuse, before any credential or data leaves, a URL off the configured origin: URLs
        learned from the server (home sets, collection and item hrefs) can point anywhere."""
        if not same_origin(url, self.origin):
            raise failures.off_origin(self.origin, url)

    def _redirect_target(self, url: str, location: str, redirects: int) -> str:
        target = urljoin(url, location)
        if redirects > _MAX_REDIRECTS:
            raise failures.too_many_redirects(url, _MAX_REDIRECTS)
        if not same_origin(target, self.origin):
            raise failures.redirected_off_origin(url, target)
        return target

    def failure(self, method: str, url: str, response: httpx.Response, extra: str = "") -> DavError:
        """A DavError naming the request and the server's short reason, without secrets."""
        return failures.failure(self.origin, method, url, response, self._auth.secrets(), extra)
