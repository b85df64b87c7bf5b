"""HTTP recordings: every exchange of a run written to a JSON-lines file, secrets redacted,
and a transport that answers from such a file without any server (`--record-http DIR`).

Why our own format and not vcrpy's cassettes: vcrpy patches httpx globally and reads every
answer whole before the caller sees it, which would defeat the DAV client's bounded streaming
(an answer is cut off at its size limit as it arrives); it also stores every body in full,
where an S3 object body is ciphertext that only needs its size and hash. A transport wrapper
through `http.http_client(wrap=...)` sees the same exchanges, streams as they stream, and keeps
a bounded prefix of each body.

One line per exchange (`Exchange.to_json`), after a first line `{"davsync_recording": 1}`:
method, URL and headers of the request and the answer, bodies as `Body` (text when it is
UTF-8, else base64; a prefix of at most `keep` bytes; size and, for binary bodies, SHA-256).
What is redacted is said by `Redactor`; the README's troubleshooting lists it for users.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import httpx

FORMAT_VERSION: Final = 1
REDACTED: Final = "<redacted>"
TEXT_KEEP: Final = 256 * 1024  # a DAV answer's prefix kept in a recording
OBJECT_KEEP: Final = 64 * 1024  # an S3 object body's prefix: ciphertext, kept only for replay

_SECRET_HEADERS: Final = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "x-amz-security-token",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
})
_SECRET_WORDS: Final = ("token", "password", "secret", "assertion", "cookie", "api-key",
                        "api_key", "signature", "credential")
_SECRET_NAMES: Final = frozenset({"code", "device_code"})
_JWT: Final = re.compile(rb"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SIGV4: Final = re.compile(r"Credential=[^/,\s]+/")
_SIGNATURE: Final = re.compile(r"Signature=[0-9a-fA-F]+")


def secret_name(name: str) -> bool:
    """Whether a header, query parameter or JSON/form field of this name holds a secret."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def secret_forms(secret: str | bytes) -> set[bytes]:
    """The ways a secret can appear in a recording: as is, base64, URL-encoded, hex."""
    raw = secret.encode() if isinstance(secret, str) else secret
    text = raw.decode("latin-1")
    forms = {raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode(),
             quote(text, safe="").encode(), quote_plus(text).encode(),
             json.dumps(text)[1:-1].encode()}
    return {form for form in forms if len(form) >= 4}


@dataclass
class Redactor:
    """Takes secrets out of what is written: headers and query parameters by name (`secret_name`,
    the S3 signature and access key inside Authorization and X-Amz-Credential), JSON and form
    fields by name, anything shaped like a JWT, and every form of the values in `secrets` (a
    password, an S3 secret key, an SSE-C key) wherever they appear."""

    secrets: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_secret(self, secret: str | bytes) -> None:
        forms = secret_forms(secret)
        with self._lock:
            self.secrets |= forms

    def header(self, name: str, value: str) -> str:
        lowered = name.lower()
        if lowered == "authorization" and value.startswith("AWS4-HMAC-SHA256"):
            return _SIGNATURE.sub(f"Signature={REDACTED}",
                                  _SIGV4.sub(f"Credential={REDACTED}/", value))
        if lowered in _SECRET_HEADERS or secret_name(lowered):
            return REDACTED
        return self.text(value)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]  # user info may hold a password
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, self._query_value(k, v)) for k, v in pairs], safe="<>/")
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))

    def _query_value(self, name: str, value: str) -> str:
        if name.lower() == "x-amz-credential":
            return REDACTED + value[value.find("/"):] if "/" in value else REDACTED
        return REDACTED if secret_name(name) else value

    def body(self, data: bytes, content_type: str) -> bytes:
        """Fields by name in JSON and form bodies, then `scrub`."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media.endswith("json"):
            data = self._json_body(data)
        elif media == "application/x-www-form-urlencoded":
            pairs = parse_qsl(data.decode("latin-1"), keep_blank_values=True)
            data = urlencode([(k, REDACTED if secret_name(k) else v) for k, v in pairs]).encode()
        return self.scrub(data)

    def _json_body(self, data: bytes) -> bytes:
        try:
            parsed = json.loads(data)
        except ValueError:
            return data
        return json.dumps(_redact_fields(parsed), ensure_ascii=False).encode()

    def scrub(self, data: bytes) -> bytes:
        with self._lock:
            secrets = sorted(self.secrets, key=len, reverse=True)
        for secret in secrets:
            data = data.replace(secret, REDACTED.encode())
        return _JWT.sub(REDACTED.encode(), data)

    def text(self, value: str) -> str:
        scrubbed: bytes = self.scrub(value.encode())
        return scrubbed.decode("utf-8", "replace")


def _redact_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if secret_name(str(k)) and v not in (None, "") else _redact_fields(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_fields(v) for v in value]
    return value


@dataclass
class BodyTap:
    """Counts and hashes a body as it passes, keeping at most `keep` bytes of it."""

    keep: int
    size: int = 0
    complete: bool = False
    cut: bool = False  # made from a body that was cut off
    _digest: Any = field(default_factory=hashlib.sha256)
    _kept: bytearray = field(default_factory=bytearray)

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._digest.update(chunk)
        room = self.keep - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]

    @property
    def kept(self) -> bytes:
        return bytes(self._kept)

    @property
    def truncated(self) -> bool:
        return self.cut or len(self._kept) < self.size

    def describe(self, redactor: Redactor, content_type: str, *, binary: bool) -> dict[str, Any]:
        """The body as a recording keeps it (see the module docstring)."""
        out: dict[str, Any] = {"size": self.size}
        if not self.complete:
            out["incomplete"] = True
        kept = bytes(self._kept)
        if self.truncated:
            out["truncated"] = True
        if binary:
            out["sha256"] = self._digest.hexdigest()
            if kept:
                out["base64"] = base64.b64encode(kept).decode()
            return out
        kept = redactor.body(kept, content_type) if not out.get("truncated") else \
            redactor.scrub(kept)
        try:
            out["text"] = kept.decode("utf-8")
        except UnicodeDecodeError:
            out["base64"] = base64.b64encode(kept).decode()
        return out


def tapped(data: bytes, keep: int) -> BodyTap:
    tap = BodyTap(keep)
    tap.take(data)
    tap.complete = True
    return tap


class Recorder:
    """One recording file: exchanges are numbered as they are sent and written as they end
    (whole lines, under a lock: requests run on several threads)."""

    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: a recording holds the user's contacts and events.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: TextIO | None = open(fd, "w", encoding="utf-8")  # noqa: SIM115
        self._write({"davsync_recording": FORMAT_VERSION})

    def number(self) -> int:
        with self._lock:
            return next(self._numbers)

    def headers(self, headers: Iterable[tuple[str | bytes, str | bytes]]) -> list[list[str]]:
        """Redacted header pairs (botocore gives some as bytes)."""
        pairs = [(_text(name), _text(value)) for name, value in headers]
        return [[name, self.redactor.header(name, value)] for name, value in pairs]

    def write(self, entry: dict[str, Any]) -> None:
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False)
        line = self.redactor.text(line)  # the last net: a known secret anywhere at all
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def transport_wrapper(self, via: str = "http") -> Callable[[httpx.BaseTransport],
                                                              httpx.BaseTransport]:
        """For `http_client(wrap=...)`: every exchange of that client recorded."""
        return lambda inner: RecordingTransport(inner, self, via)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _content_type(headers: httpx.Headers) -> str:
    return str(headers.get("content-type", ""))


class RecordingTransport(httpx.BaseTransport):
    """Passes every exchange on unchanged and records it; the answer's body is recorded as it
    streams to the caller, so size limits and streaming work as without recording."""

    def __init__(self, inner: httpx.BaseTransport, recorder: Recorder, via: str) -> None:
        self.inner = inner
        self.recorder = recorder
        self.via = via

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        entry: dict[str, Any] = {"n": self.recorder.number(), "via": self.via,
                                 "request": self._request(request)}
        try:
            response = self.inner.handle_request(request)
        except Exception as exc:
            entry["error"] = type(exc).__name__
            self.recorder.write(entry)
            raise
        entry["response"] = {"status": response.status_code,
                             "headers": self.recorder.headers(response.headers.multi_items())}
        tap = BodyTap(TEXT_KEEP)

        def done() -> None:
            entry["response"]["body"] = _decoded(tap, response.headers).describe(
                self.recorder.redactor, _content_type(response.headers), binary=False)
            if "content-encoding" in response.headers:
                entry["response"]["body"]["decoded"] = True
            self.recorder.write(entry)

        stream = _TappedStream(response.stream, tap, done)
        return httpx.Response(response.status_code, headers=response.headers, stream=stream,
                              extensions=response.extensions)

    def _request(self, request: httpx.Request) -> dict[str, Any]:
        out: dict[str, Any] = {"method": request.method,
                               "url": self.recorder.redactor.url(str(request.url)),
                               "headers": self.recorder.headers(request.headers.multi_items())}
        try:
            content = request.content
        except httpx.RequestNotRead:
            out["body"] = {"streamed": True}
            return out
        if content:
            out["body"] = tapped(content, TEXT_KEEP).describe(
                self.recorder.redactor, _content_type(request.headers), binary=False)
        return out

    def close(self) -> None:
        self.inner.close()


def _decoded(tap: BodyTap, headers: httpx.Headers) -> BodyTap:
    """The tap of a gzip/deflate answer, decompressed: a compressed body could hide a secret
    from the redaction (the server compresses when httpx says it may)."""
    if headers.get("content-encoding", "").lower() not in ("gzip", "deflate", "x-gzip"):
        return tap
    try:
        data = zlib.decompressobj(wbits=47).decompress(bytes(tap.kept))
    except zlib.error:
        return tap
    out = BodyTap(tap.keep)
    out.take(data)
    out.complete = tap.complete
    out.cut = tap.truncated
    return out


class _TappedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream, tap: BodyTap,
                 done: Callable[[], None]) -> None:
        assert isinstance(inner, httpx.SyncByteStream)
        self._inner = inner
        self._tap = tap
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._tap.take(chunk)
            yield chunk
        self._tap.complete = True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


# -- replay ---------------------------------------------------------------------------------

class ReplayMismatch(RuntimeError):
    """A request the recording has no (more) answer for: replay is not the recorded run."""


@dataclass
class Recorded:
    """One exchange read back from a recording."""

    n: int
    via: str
    method: str
    url: str
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool
    error: str | None

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Recorded:
        response = entry.get("response") or {}
        body = response.get("body") or {}
        data = body["text"].encode() if "text" in body else \
            base64.b64decode(body.get("base64", ""))
        return cls(int(entry["n"]), str(entry.get("via", "http")),
                   entry["request"]["method"], entry["request"]["url"],
                   response.get("status"), [(k, v) for k, v in response.get("headers", [])],
                   data, bool(body.get("truncated")), entry.get("error"))


def read_recording(path: Path) -> list[Recorded]:
    """The exchanges of a recording file, in the order they were sent."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0]) if lines else {}
    if header.get("davsync_recording") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a davsync recording (version {FORMAT_VERSION})")
    return sorted((Recorded.from_json(json.loads(line)) for line in lines[1:] if line),
                  key=lambda r: r.n)


class Replay:
    """Answers requests from recorded exchanges, without any server.

    A request takes the first unused exchange with the same method and URL (query secrets
    redacted as in the recording): requests sent on several threads at once may come in
    another order than recorded. `unused()` and `mismatches` tell a test whether the replayed
    run sent exactly the recorded requests."""

    def __init__(self, exchanges: Iterable[Recorded], redactor: Redactor | None = None) -> None:
        self.exchanges = list(exchanges)
        self.redactor = redactor or Redactor()
        self.used: list[Recorded] = []
        self.mismatches: list[str] = []
        self._lock = threading.Lock()

    def take(self, method: str, url: str, via: str) -> Recorded:
        key = (method, self.redactor.url(url))
        with self._lock:
            for exchange in self.exchanges:
                if exchange.via == via and (exchange.method, exchange.url) == key:
                    self.exchanges.remove(exchange)
                    self.used.append(exchange)
                    return exchange
            self.mismatches.append(f"{method} {key[1]}")
        raise ReplayMismatch(f"the recording has no (more) answer for {method} {key[1]}")

    def unused(self) -> list[str]:
        return [f"{e.method} {e.url}" for e in self.exchanges]

    def transport(self, via: str = "http") -> ReplayTransport:
        return ReplayTransport(self, via)


class ReplayTransport(httpx.BaseTransport):
    """A transport that answers from a `Replay` (for `http_client(transport=...)`)."""

    def __init__(self, replay: Replay, via: str) -> None:
        self.replay = replay
        self.via = via

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        recorded = self.replay.take(request.method, str(request.url), self.via)
        if recorded.error is not None:
            raise httpx.ConnectError(f"recorded: {recorded.error}", request=request)
        if recorded.truncated:
            raise ReplayMismatch(f"{request.method} {request.url}: the recorded answer was cut "
                                 "off at the recording's size bound and cannot be replayed")
        dropped = ("content-length", "content-encoding", "transfer-encoding")
        headers = [(k, v) for k, v in recorded.headers if k.lower() not in dropped]
        assert recorded.status is not None
        return httpx.Response(recorded.status, headers=headers, content=recorded.body)
