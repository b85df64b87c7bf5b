"""A run's first request, sent before httpx is even imported.

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
from dataclasses import dataclass
from urllib.parse import urlsplit

from davsync.dav.api import DEFAULT_REQUEST_TIMEOUT, DavError, Probe, RequestCounter

log = logging.getLogger(__name__)

_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})
_MAX_ANSWER = 1 << 20  # a Depth 0 answer is a few hundred bytes; more is not a probe answer
# The early probe blocks the start of the run while it connects: a server slower than this to
# accept (or one whose packets are dropped) gets the main client's patience and retries instead.
MAX_CONNECT_SECONDS = 2.0


@dataclass(frozen=True)
class EarlyAnswer:
    status: int
    content: bytes
    date: str | None = None  # the Date header (`dav.probe.settled`)
    seconds: float = 0.0  # from sending the request to the whole answer


def proxy_configured() -> bool:
    """True when httpx would send requests through a proxy from the environment."""
    return any(name.lower() in _PROXY_VARIABLES and value for name, value in os.environ.items())


class EarlyProbe:
    """One PROPFIND Depth 0 in flight on its own connection; `answer()` reads it once."""

    def __init__(
        self,
        url: str,
        authorization: str,
        body: bytes,
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        counter: RequestCounter,
        deadline: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        """`deadline`: seconds from now by which the whole answer must have arrived."""
        self.url = url
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._sent = time.monotonic()
        self._until = self._sent + deadline
        self._conn: http.client.HTTPConnection | None = None
        self._answered = False
        self._answer: EarlyAnswer | None = None
        parts = urlsplit(url)
        path = parts.path or "/"
        timeout = min(connect_timeout, MAX_CONNECT_SECONDS)
        conn = (
            http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                        context=tls)
            if parts.scheme == "https"
            else http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        )
        counter.add("PROPFIND")
        try:
            conn.request("PROPFIND", path, body=body, headers={
                "Authorization": authorization, "Depth": "0",
                "Content-Type": "application/xml; charset=utf-8",
            })
        except (OSError, http.client.HTTPException) as exc:
            log.debug("early probe of %s not sent: %s", url, type(exc).__name__)
            conn.close()
            return
        self._conn = conn

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
        probes again)."""
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
        conn, self._conn = self._conn, None
        if conn is None:
            return None
        left = self._until - time.monotonic()
        overdue = threading.Event()
        hang_up = threading.Timer(left, _hang_up, (conn.sock, overdue))
        hang_up.daemon = True
        hang_up.start()  # socket timeouts are per read: only this bounds a trickle
        try:
            if conn.sock is not None:
                conn.sock.settimeout(max(0.001, min(self._read_timeout, left)))
            response = conn.getresponse()
            content = response.read(_MAX_ANSWER + 1)
            answer = EarlyAnswer(response.status, content, response.getheader("Date"),
                                 time.monotonic() - self._sent)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("early probe of %s got no answer: %s", self.url, type(exc).__name__)
            return None
        finally:
            hang_up.cancel()
            conn.close()
        if overdue.is_set():
            log.debug("early probe of %s: no whole answer within %g s", self.url, self._deadline)
            return None
        if len(answer.content) > _MAX_ANSWER:
            log.debug("early probe of %s: answer over %d bytes, not used", self.url, _MAX_ANSWER)
            return None
        log.debug("early probe: PROPFIND %s -> %d", self.url, answer.status)
        return answer

    def close(self) -> None:
        """Drop the connection if the answer was never read (a run that stopped early)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _hang_up(sock: socket.socket | None, overdue: threading.Event) -> None:
    """End a read that went past the deadline (from the timer's thread: shutdown, unlike
    close, wakes a thread blocked in recv)."""
    overdue.set()
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to end
            sock.shutdown(socket.SHUT_RDWR)
