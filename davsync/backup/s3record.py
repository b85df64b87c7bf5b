"""S3 exchanges in HTTP recordings (`dav/recording.py`): boto3 does not use httpx, so its
exchanges are recorded and replayed through botocore's own seam, the `before-send` event, whose
handler may answer a request itself.

Object bodies (PutObject and UploadPart requests, GetObject answers) are ciphertext: recorded as
size, SHA-256 and at most `OBJECT_KEEP` bytes, hashed as they stream. Authorization keeps its
shape with the access key and signature taken out; SSE-C key headers are redacted by name.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders

from davsync.dav.recording import (
    OBJECT_KEEP,
    TEXT_KEEP,
    BodyTap,
    Recorder,
    Replay,
    ReplayMismatch,
    tapped,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

VIA = "s3"
_OBJECT_REQUESTS = frozenset({"PutObject", "UploadPart"})
_OBJECT_ANSWERS = frozenset({"GetObject"})


def _operation(event_name: str) -> str:
    return event_name.rsplit(".", 1)[-1]


def record_s3(client: S3Client, recorder: Recorder) -> None:
    """Record every exchange `client` makes into `recorder`, its answers as they stream."""
    session = client._endpoint.http_session  # type: ignore[attr-defined]

    def send(request: AWSPreparedRequest, event_name: str = "", **_: Any) -> AWSResponse:
        operation = _operation(event_name)
        entry: dict[str, Any] = {"n": recorder.number(), "via": VIA, "operation": operation,
                                 "request": _request(request, operation, recorder)}
        try:
            response: AWSResponse = session.send(request)
        except Exception as exc:
            entry["error"] = type(exc).__name__
            recorder.write(entry)
            raise
        entry["response"] = {"status": response.status_code,
                             "headers": recorder.headers(response.headers.items())}
        binary = operation in _OBJECT_ANSWERS and response.status_code < 300
        tap = BodyTap(OBJECT_KEEP if binary else TEXT_KEEP)
        content_type = response.headers.get("content-type", "")

        def done() -> None:
            entry["response"]["body"] = tap.describe(recorder.redactor, content_type,
                                                     binary=binary)
            recorder.write(entry)

        length = response.headers.get("content-length")
        raw = _TappedRaw(response.raw, tap, done, int(length) if length else None)
        return AWSResponse(response.url, response.status_code, cast(Any, response.headers), raw)

    # A before-send handler that returns a response is the one botocore uses.
    client.meta.events.register_first("before-send.s3", cast(Any, send))


def _request(request: AWSPreparedRequest, operation: str, recorder: Recorder) -> dict[str, Any]:
    out: dict[str, Any] = {"method": request.method, "url": recorder.redactor.url(request.url),
                           "headers": recorder.headers(request.headers.items())}
    body = _body_bytes(request.body)
    if body:
        binary = operation in _OBJECT_REQUESTS
        out["body"] = tapped(body, OBJECT_KEEP if binary else TEXT_KEEP).describe(
            recorder.redactor, request.headers.get("content-type", ""), binary=binary)
    return out


def _body_bytes(body: Any) -> bytes:
    """The request body without consuming it (botocore may send a file-like body)."""
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "seek") and hasattr(body, "read"):
        position = body.tell()
        data = body.read()
        body.seek(position)
        return bytes(data)
    return b""


class _TappedRaw:
    """An urllib3 response body that feeds a `BodyTap` as botocore reads it; the exchange is
    written when the body ends, is closed, or has given its Content-Length."""

    def __init__(self, raw: Any, tap: BodyTap, done: Callable[[], None],
                 length: int | None) -> None:
        self._raw = raw
        self._tap = tap
        self._done: Callable[[], None] | None = done
        self._length = length

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        data: bytes = self._raw.read(amt, *args, **kwargs)
        self._take(data, ended=not data or amt is None)
        return data

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            self._take(chunk, ended=False)
            yield chunk
        self._take(b"", ended=True)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._finish()

    def _take(self, data: bytes, *, ended: bool) -> None:
        self._tap.take(data)
        if ended or (self._length is not None and self._tap.size >= self._length):
            self._tap.complete = True
            self._finish()

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def replay_s3(client: S3Client, replay: Replay) -> None:
    """Answer every request of `client` from `replay`; nothing reaches the network."""

    def send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        recorded = replay.take(request.method, request.url, VIA)
        if recorded.truncated:
            raise ReplayMismatch(f"{request.method} {request.url}: the recorded answer was cut "
                                 "off at the recording's size bound and cannot be replayed")
        pairs = [(k, v) for k, v in recorded.headers if k.lower() != "content-length"]
        headers = HTTPHeaders.from_pairs([*pairs, ("Content-Length", str(len(recorded.body)))])
        assert recorded.status is not None
        return AWSResponse(request.url, recorded.status, headers, _ReplayRaw(recorded.body))

    # A before-send handler that returns a response is the one botocore uses.
    client.meta.events.register_first("before-send.s3", cast(Any, send))


class _ReplayRaw(io.BytesIO):
    """A recorded body, read as botocore reads an urllib3 response."""

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk
