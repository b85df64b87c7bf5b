"""A run's first requests, sent before httpx is even imported.

Importing httpx and httpcore costs 80-150 ms, up to a third of a no-op sync whose only request
is the collection's change probe. So the composition root sends that probe over the standard
library's `http.client` as soon as the config and the state are read, imports httpx, the engine
and the parsers while the server works on it, and reads the answer when the engine needs it.

It takes the plain road only: no proxy in the environment (httpx honours those; this does not).
It acts on no answer itself: the caller hands a 207 to `Collection.read_probe` and, for anything
else (a 401, a redirect, a 5xx, a network error, a timeout), probes again through `DavClient`,
which owns retries, credential refresh and error messages. Either way the request is counted.
Like every request, it is bounded: at most `_MAX_ANSWER` bytes, and an overall deadline, so a
server trickling its answer is hung up on and left to the main client to report.

When that answer shows a change the run will list, the composition root sends the
sync-collection with the items' data the same way (`EarlySync`), so the server builds its answer
while the rest of the run is imported (on a 500-of-1 000 change, 0.05-0.1 s of a 0.4 s run).
The collection (`Collection.present_early_sync`) takes it only for the token it was sent with and
only while no probe was sent after it (nothing may be listed before the probe a run reads its
marks from); its answer is read as a stream (`EarlyStream`), gzip or not, under the same
deadline, and parsed by the engine's hardened reader (`dav.syncstream`); a refused token (403,
412) is read as the client would read it. Any other answer (a 401, a 5xx, another encoding, no
answer) is dropped, and the engine sends the request again through `DavClient`, which knows
what to make of it.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from davsync.dav import xmlbodies as xb
from davsync.dav.api import DEFAULT_REQUEST_TIMEOUT, DavError, Probe, RequestCounter

log = logging.getLogger(__name__)

_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})
_MAX_ANSWER = 1 << 20  # a Depth 0 answer is a few hundred bytes; more is not a probe answer
# The early probe blocks the start of the run while it connects: a server slower than this to
# accept (or one whose packets are dropped) gets the main client's patience and retries instead.
MAX_CONNECT_SECONDS = 2.0
_CHUNK = 1 << 16  # bytes read, or unpacked from gzip, at a time


@dataclass(frozen=True)
class EarlyAnswer:
    status: int
    content: bytes
    date: str | None = None  # the Date header (`dav.probe.settled`)
    seconds: float = 0.0  # from sending the request to the whole answer


@dataclass(frozen=True)
class EarlyRoute:
    """How a run's early requests reach the server: the Basic credentials' header, the TLS
    context, the client's timeouts (`deadline`: seconds from sending by which a whole answer
    must have arrived) and the run's request counter."""

    authorization: str
    tls: ssl.SSLContext | None
    connect_timeout: float
    read_timeout: float
    counter: RequestCounter
    deadline: float = DEFAULT_REQUEST_TIMEOUT


def proxy_configured() -> bool:
    """True when httpx would send requests through a proxy from the environment."""
    return any(name.lower() in _PROXY_VARIABLES and value for name, value in os.environ.items())


class _EarlyRequest:
    """One request sent at once on a connection of its own (`http.client`), its answer read
    later, whole by the deadline `deadline` seconds after sending."""

    def __init__(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                 route: EarlyRoute) -> None:
        self.url = url
        self.deadline = route.deadline
        self._method = method
        self._read_timeout = route.read_timeout
        self._sent = time.monotonic()
        self._until = self._sent + route.deadline
        self._conn: http.client.HTTPConnection | None = None
        parts = urlsplit(url)
        path = parts.path or "/"
        timeout = min(route.connect_timeout, MAX_CONNECT_SECONDS)
        conn = (
            http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                        context=route.tls)
            if parts.scheme == "https"
            else http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        )
        route.counter.add(method)
        try:
            conn.request(method, path, body=body,
                         headers={"Authorization": route.authorization, **headers})
        except (OSError, http.client.HTTPException) as exc:
            log.debug("early %s of %s not sent: %s", method, url, type(exc).__name__)
            conn.close()
            return
        self._conn = conn

    def _response(self) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse,
                                 _HangUp] | None:
        """The answer's status and headers, the connection handed over to the caller with
        the timer that hangs up on it at the deadline (cancel it and close the connection
        when done); None when there is no answer (both already closed)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return None
        left = self._until - time.monotonic()
        hang_up = _HangUp(conn.sock, left)
        try:
            if conn.sock is not None:
                conn.sock.settimeout(max(0.001, min(self._read_timeout, left)))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            hang_up.cancel()
            conn.close()
            log.debug("early %s of %s got no answer: %s", self._method, self.url,
                      "over its deadline" if hang_up.overdue.is_set() else type(exc).__name__)
            return None
        return conn, response, hang_up

    def close(self) -> None:
        """Drop the connection if the answer was never read (a run that stopped early)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class EarlyProbe(_EarlyRequest):
    """One PROPFIND Depth 0 in flight on its own connection; `answer()` reads it once."""

    def __init__(self, url: str, body: bytes, route: EarlyRoute) -> None:
        self._answered = False
        self._answer: EarlyAnswer | None = None
        self._probe: Probe | None = None
        self._probed = False
        super().__init__("PROPFIND", url, {"Depth": "0", **xb.XML_CONTENT}, body, route)

    def answer(self) -> EarlyAnswer | None:
        """The server's status and body, or None when there is none to act on. Read once;
        later calls return the same."""
        if self._answered:
            return self._answer
        self._answered = True
        self._answer = self._read()
        return self._answer

    def arrived(self) -> bool:
        """Without waiting: whether `answer()` would return at once (the answer's first bytes
        are here, it was read, or there is none to wait for). A hint for using the wait."""
        conn = self._conn
        if conn is None or conn.sock is None:
            return True
        if isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
            return True
        try:
            readable, _, _ = select.select([conn.sock], [], [], 0)
        except (OSError, ValueError):  # closed under us: answer() finds out
            return True
        return bool(readable)

    def probe(self) -> Probe | None:
        """The change marker of a usable 207 answer (`dav.probe`), else None (then the run
        probes again). Parsed once: the no-op check and the early sync-collection both ask."""
        if not self._probed:
            self._probe, self._probed = self._parse_probe(), True
        return self._probe

    def _parse_probe(self) -> Probe | None:
        answer = self.answer()
        if answer is None or answer.status != 207:
            return None
        from davsync.dav.hrefs import normalize_href
        from davsync.dav.multistatus import parse_multistatus
        from davsync.dav.probe import probe_from

        try:
            own = parse_multistatus(answer.content, self.url).own(
                normalize_href(self.url, self.url))
        except DavError:
            return None
        if own is None:
            return None
        return probe_from(own, date=answer.date, seconds=answer.seconds)

    def _read(self) -> EarlyAnswer | None:
        opened = self._response()
        if opened is None:
            return None
        conn, response, hang_up = opened
        try:
            content = response.read(_MAX_ANSWER + 1)
            answer = EarlyAnswer(response.status, content, response.getheader("Date"),
                                 time.monotonic() - self._sent)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("early probe of %s got no answer: %s", self.url, type(exc).__name__)
            return None
        finally:
            hang_up.cancel()
            conn.close()
        if hang_up.overdue.is_set():
            log.debug("early probe of %s: no whole answer within %g s", self.url, self.deadline)
            return None
        if len(answer.content) > _MAX_ANSWER:
            log.debug("early probe of %s: answer over %d bytes, not used", self.url, _MAX_ANSWER)
            return None
        log.debug("early probe: PROPFIND %s -> %d", self.url, answer.status)
        return answer


class EarlySync(_EarlyRequest):
    """The sync-collection from `token` asking for each changed item's data
    (`xmlbodies.sync_with_data`), in flight on its own connection while the run imports
    the rest; `take()` opens its answer once."""

    def __init__(self, url: str, body: bytes, token: str, route: EarlyRoute) -> None:
        self.token = token
        super().__init__("REPORT", url,
                         {"Depth": "0", "Accept-Encoding": "gzip", **xb.XML_CONTENT}, body, route)

    def take(self) -> EarlyStream | EarlyAnswer | None:
        """A 207 answer to read as it streams in (`EarlyStream`); a refusal of the token
        (403, 412: its status and body, read whole, at most `_MAX_ANSWER` bytes either way,
        unpacked if gzip); None for anything else (no answer, another status or encoding): then
        the request is sent again through `DavClient`, which owns retries, credential
        refresh and errors."""
        opened = self._response()
        if opened is None:
            return None
        conn, response, hang_up = opened
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        log.debug("early sync-collection: REPORT %s -> %d", self.url, response.status)
        if response.status == 207 and encoding in ("identity", "gzip"):
            return EarlyStream(self.url, conn, response, hang_up, gzipped=encoding == "gzip",
                               deadline=self.deadline)
        try:
            if response.status in (403, 412) and encoding in ("identity", "gzip"):
                content = response.read(_MAX_ANSWER + 1)
                if encoding == "gzip":
                    content = zlib.decompressobj(wbits=31).decompress(content, _MAX_ANSWER + 1)
                if len(content) <= _MAX_ANSWER and not hang_up.overdue.is_set():
                    return EarlyAnswer(response.status, content)
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            log.debug("early sync-collection of %s: no whole answer (%s)", self.url,
                      type(exc).__name__)
        finally:
            hang_up.cancel()
            conn.close()
        return None


class EarlyOverdue(Exception):
    """The early answer did not arrive whole within its deadline."""

    def __init__(self, deadline: float) -> None:
        super().__init__(f"no whole answer within {deadline:g} s")
        self.deadline = deadline


class EarlyLost(Exception):
    """The connection failed while the answer was read (the message: what failed)."""


class EarlyStream:
    """The body of an early 207, decoded, a chunk at a time, on the thread that reads it; the
    connection is closed when it ends, fails, or `close()` is called."""

    def __init__(self, url: str, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, hang_up: _HangUp, *, gzipped: bool,
                 deadline: float) -> None:
        self._url = url
        self._conn = conn
        self._response = response
        self._hang_up = hang_up
        self._gzipped = gzipped
        self._deadline = deadline

    def chunks(self) -> Iterator[bytes]:
        """The decoded body. Raises EarlyOverdue past the deadline, EarlyLost for a broken
        connection, DavError for broken gzip data. A gzip answer is unpacked at most `_CHUNK`
        bytes at a time, so a small body that unpacks to gigabytes is refused by the reader's
        limit per item long before it fills the memory."""
        unpack = zlib.decompressobj(wbits=31) if self._gzipped else None
        try:
            while raw := self._read():
                if unpack is None:
                    yield raw
                    continue
                while raw:
                    out = unpack.decompress(raw, _CHUNK)
                    raw = unpack.unconsumed_tail
                    if out:
                        yield out
            if unpack is not None:
                if tail := unpack.flush():
                    yield tail
                if not unpack.eof:
                    raise DavError(f"{self._url}: the answer's gzip data ends early")
        except zlib.error as exc:
            raise DavError(f"{self._url}: the answer's gzip data is broken ({exc})") from None
        finally:
            self.close()

    def _read(self) -> bytes:
        try:
            chunk = self._response.read1(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            if self._hang_up.overdue.is_set():
                raise EarlyOverdue(self._deadline) from None
            raise EarlyLost(type(exc).__name__) from None
        if not chunk and self._hang_up.overdue.is_set():
            raise EarlyOverdue(self._deadline)
        return chunk

    def close(self) -> None:
        self._hang_up.cancel()
        self._conn.close()


class _HangUp:
    """Ends a read that goes past the deadline: socket timeouts are per read, so only this
    bounds a trickle. From the timer's thread: shutdown, unlike close, wakes a thread
    blocked in recv."""

    def __init__(self, sock: socket.socket | None, seconds: float) -> None:
        self.overdue = threading.Event()
        self._sock = sock
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.overdue.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to end
                self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
