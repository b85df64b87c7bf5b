"""What one answer from the server may cost: time (a deadline per request) and size (a limit
per kind of request). The server is not trusted: one that trickles a byte a second, or streams
100 MB at a probe, must not hold a run forever or fill the memory.

httpx has no overall timeout (encode/httpx#1450): its read timeout is per socket read, so a
trickle never trips it. httpcore, below it, takes a network backend; `install_deadline` wraps
the backend of every connection pool of an `httpx.Client` (direct and proxy mounts) so that each
connect, TLS handshake, socket read and write waits at most until the calling thread's deadline
(`deadline()`). A request runs on one thread from send to last byte, so a thread-local deadline
is exactly one request's: the headers, the body and the upload are all bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpcore
import httpx

_MIB: Final = 1 << 20
# Headers httpx would apply again to a body that was already read (and decompressed).
_BODY_HEADERS: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class AnswerLimit:
    """The most davsync reads of one answer of a kind of request (decompressed bytes)."""

    size: int
    what: str

    def describe(self) -> str:
        return f"{self.size // _MIB} MiB, the most davsync reads of {self.what}"


# A Depth 0 PROPFIND answer is a few hundred bytes; a write's answer is usually empty.
SMALL: Final = AnswerLimit(1 * _MIB, "an answer about one resource or to a write")
# A Radicale sync-collection or Depth 1 listing takes about 250 bytes per item (2.5 MB for
# 10 000 items): 32 MiB fits well over 100 000 items.
LISTING: Final = AnswerLimit(32 * _MIB, "a collection listing")
# Multigets carry the items themselves, photos included; a batch over this is split in halves
# until it fits, and only a single item over it is reported as failed.
MULTIGET: Final = AnswerLimit(64 * _MIB, "one multiget batch")


class AnswerTooLarge(Exception):
    """The answer went over its `AnswerLimit`; the rest was not read."""

    def __init__(self, limit: AnswerLimit) -> None:
        super().__init__(limit.describe())
        self.limit = limit


class RequestOverdue(Exception):
    """The request did not finish before its deadline."""


def read_bounded(response: httpx.Response, limit: AnswerLimit) -> httpx.Response:
    """Read a streamed `response` up to `limit` and return it with its body in memory (the
    same status, headers and request). Closes `response` either way."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit.size:
                raise AnswerTooLarge(limit)
            chunks.append(chunk)
    finally:
        response.close()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    return httpx.Response(
        response.status_code, headers=headers, content=b"".join(chunks),
        request=response.request,
    )


# -- the deadline ----------------------------------------------------------------------------

_local = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every network wait of this thread's request to `seconds` from now; a transport
    failure after the deadline passed is raised as RequestOverdue."""
    until = time.monotonic() + seconds
    _local.until = until
    try:
        yield
    except httpx.TransportError:
        if time.monotonic() >= until:
            raise RequestOverdue from None
        raise
    finally:
        _local.until = None


def past_deadline() -> bool:
    """True when this thread's request deadline has passed (a transport failure while a
    consumer reads a streamed answer is then the deadline, not the network)."""
    until: float | None = getattr(_local, "until", None)
    return until is not None and time.monotonic() >= until


def _remaining(timeout: float | None, overdue: type[Exception]) -> float | None:
    """`timeout` shortened to what is left of this thread's deadline, if it has one."""
    until: float | None = getattr(_local, "until", None)
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise overdue("the request deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(
            ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None, socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _remaining(timeout, httpcore.ConnectTimeout), local_address,
            socket_options,
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _remaining(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_deadline(client: httpx.Client) -> int:
    """Make every connection pool of `client` honour `deadline()`; returns how many pools.

    httpx builds its pools (one direct, one per proxy from the environment) without a way to
    pass a network backend, so this reaches into them once, before the first request. A test
    asserts it still finds them after an httpx upgrade. Transports that are not httpx's own (a
    test's MockTransport) have no pool and are left alone."""
    installed = 0
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool):
            pool._network_backend = _DeadlineBackend(pool._network_backend)
            installed += 1
    return installed
