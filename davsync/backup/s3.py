"""The S3 BlobStore adapter (boto3, path-style addressing), with optional SSE-C on every call.

boto3 signs requests and computes the SSE-C key MD5; this module only maps names into
bucket/prefix, passes the SSE-C headers on every object call (including each multipart part,
HeadObject and CompleteMultipartUpload), and turns botocore errors into StoreErrors.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from davsync.backup.store import AccessDenied, NotFound, Part, StoreError
from davsync.secret import Secret

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

# botocore's DEBUG log prints request headers, with SSE-C the key among them: app/logsetup.py
# keeps it quiet even under `davsync -vv` (our own logger says what the store does).
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchUpload", "NotFound", "NoSuchBucket"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


def make_client(endpoint: str | None, region: str, credentials: tuple[str, Secret] | None,
                max_connections: int = 16, timeout: float = 60.0) -> S3Client:
    """An S3 client; `credentials` None means the standard AWS environment/profile chain."""
    kwargs: dict[str, Any] = {}
    if credentials is not None:
        kwargs["aws_access_key_id"] = credentials[0]
        kwargs["aws_secret_access_key"] = credentials[1].reveal()
    config = BotoConfig(
        # Retries live in one place, RetryingStore, which wraps every adapter the same way.
        s3={"addressing_style": "path"}, retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_connections, connect_timeout=10, read_timeout=timeout,
        # Many S3-compatible stores reject the newer default CRC checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    client: S3Client = session.client("s3", endpoint_url=endpoint, region_name=region,
                                      config=config, **kwargs)
    return client


class S3Store:
    def __init__(self, client: S3Client, bucket: str, prefix: str,
                 sse_c_key: bytes | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        endpoint = client.meta.endpoint_url
        self.where = f"s3 {endpoint} bucket {bucket!r}" + (f" prefix {prefix!r}" if prefix else "")
        self._sse: dict[str, Any] = {}
        self._sse_encoded: dict[str, Any] = {}
        if sse_c_key is not None:
            self._sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": sse_c_key}
            # botocore encodes the key and adds its MD5 for object calls, not for ListParts.
            md5 = hashlib.md5(sse_c_key, usedforsecurity=False).digest()
            self._sse_encoded = {
                "SSECustomerAlgorithm": "AES256",
                "SSECustomerKey": base64.b64encode(sse_c_key).decode(),
                "SSECustomerKeyMD5": base64.b64encode(md5).decode(),
            }

    def with_sse_c(self, key: bytes) -> S3Store:
        """The same bucket and client, every object call carrying this SSE-C key."""
        return S3Store(self.client, self.bucket, self.prefix, key)

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            msg = f"{self.where}: {what}: {code or status} {err.get('Message', '')}".rstrip()
            if code in _NOT_FOUND or status == 404:
                raise NotFound(msg) from None
            if code in _DENIED or status == 403:
                raise AccessDenied(msg) from None
            raise StoreError(msg, transient=status >= 500 or status == 429) from None
        except BotoCoreError as exc:
            raise StoreError(f"{self.where}: {what}: {exc}", transient=True) from None

    def head_bucket(self) -> None:
        """Whether the bucket is there: NotFound when it is not, AccessDenied when the
        credentials are refused (`davsync doctor` tells these apart without creating it)."""
        self._call("head bucket", lambda: self.client.head_bucket(Bucket=self.bucket))

    def ensure_bucket(self) -> None:
        try:
            self.head_bucket()
        except NotFound:
            region = self.client.meta.region_name
            extra: dict[str, Any] = {}
            if region and region != "us-east-1":   # AWS wants the region said twice elsewhere
                extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self._call("create bucket", lambda: self.client.create_bucket(Bucket=self.bucket,
                                                                          **extra))

    def put(self, name: str, data: bytes | bytearray) -> None:
        self._call(f"put {name}", lambda: self.client.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=cast(bytes, data), **self._sse))

    def get(self, name: str) -> bytes:
        def fetch() -> bytes:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(name), **self._sse)
            return resp["Body"].read()
        return self._call(f"get {name}", fetch)

    def stream(self, name: str, chunk_size: int) -> Iterator[bytes]:
        resp = self._call(f"get {name}", lambda: self.client.get_object(
            Bucket=self.bucket, Key=self._key(name), **self._sse))
        body = resp["Body"]
        try:
            while True:
                chunk = self._call(f"read {name}", lambda: body.read(chunk_size))
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if length == 0:
            return b""

        def fetch() -> bytes:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(name),
                                          Range=f"bytes={offset}-{offset + length - 1}",
                                          **self._sse)
            return resp["Body"].read()
        data = self._call(f"get {name} bytes {offset}+{length}", fetch)
        if len(data) != length:
            raise StoreError(f"{self.where}: get {name}: asked for {length} bytes at {offset}, "
                             f"got {len(data)}")
        return data

    def head(self, name: str) -> int | None:
        try:
            resp = self._call(f"head {name}", lambda: self.client.head_object(
                Bucket=self.bucket, Key=self._key(name), **self._sse))
        except NotFound:
            return None
        return int(resp["ContentLength"])

    def delete(self, name: str) -> None:
        self._call(f"delete {name}", lambda: self.client.delete_object(
            Bucket=self.bucket, Key=self._key(name)))

    def create_multipart(self, name: str) -> str:
        resp = self._call(f"create upload {name}", lambda: self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self._key(name), **self._sse))
        return resp["UploadId"]

    def upload_part(self, name: str, upload_id: str, number: int, data: bytes | bytearray) -> Part:
        resp = self._call(f"upload part {number} of {name}", lambda: self.client.upload_part(
            Bucket=self.bucket, Key=self._key(name), UploadId=upload_id, PartNumber=number,
            Body=cast(bytes, data), **self._sse))
        return Part(number, resp["ETag"], len(data))

    def list_parts(self, name: str, upload_id: str) -> list[Part]:
        parts: list[Part] = []
        marker = 0
        while True:
            resp = self._call(f"list parts {name}", lambda m=marker: self.client.list_parts(  # type: ignore[misc]
                Bucket=self.bucket, Key=self._key(name), UploadId=upload_id,
                PartNumberMarker=m, **self._sse_encoded))
            for p in resp.get("Parts", []):
                parts.append(Part(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"])))
            if not resp.get("IsTruncated"):
                return parts
            marker = int(resp.get("NextPartNumberMarker", 0))

    def complete_multipart(self, name: str, upload_id: str, parts: list[Part]) -> None:
        self._call(f"complete {name}", lambda: self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self._key(name), UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag}
                                       for p in sorted(parts, key=lambda p: p.number)]},
            **self._sse))

    def abort_multipart(self, name: str, upload_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(f"abort {name}", lambda: self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(name), UploadId=upload_id))

    def list_multipart_uploads(self) -> list[tuple[str, str]]:
        resp = self._call("list uploads", lambda: self.client.list_multipart_uploads(
            Bucket=self.bucket, Prefix=self.prefix))
        return [(u["Key"][len(self.prefix):], u["UploadId"]) for u in resp.get("Uploads", [])]
