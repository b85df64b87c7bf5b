"""The client-side encrypted object format: a header, then AES-256-GCM segments (pure).

    header  = magic "DAVSYNC\\x01" (8) | segment_size u32 BE (4) | salt (16) | nonce_prefix (8)
    key     = HKDF-SHA256(ikm=data_key, salt=salt, info="davsync v1 segment key"), 32 bytes
    segment i (i = 0, 1, ...): AES-256-GCM(key, nonce = nonce_prefix | u32 BE i,
                                aad = header | final flag byte 0x01 or 0x00) -> ciphertext | tag(16)

Every segment but the last holds exactly `segment_size` plaintext bytes; the last one holds
0..segment_size bytes and has the final flag, so reordering (the counter), truncation (the flag)
and any change to the header or data (the tag) fail authentication. docs/backup-format.md says the
same for someone decrypting without davsync.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"DAVSYNC\x01"
HEADER_SIZE = 36
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 1 << 20
_KEY_INFO = b"davsync v1 segment key"
Buffer: TypeAlias = bytes | bytearray | memoryview


class DecryptError(ValueError):
    """The object is not authentic: tampered, truncated, reordered or under another key."""


def encrypted_size(plain_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    segments = max(1, -(-plain_size // segment_size))
    return HEADER_SIZE + plain_size + TAG_SIZE * segments


def segment_count(plain_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return max(1, -(-plain_size // segment_size))


def _segment_key(data_key: bytes, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_KEY_INFO).derive(data_key)
    return AESGCM(key)


class Encryptor:
    """Encrypts one object. Deterministic for a given (salt, nonce_prefix), so an interrupted
    multipart upload can resume at any segment without re-sending earlier parts."""

    def __init__(self, data_key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE,
                 salt: bytes | None = None, nonce_prefix: bytes | None = None) -> None:
        self.segment_size = segment_size
        self.salt = salt if salt is not None else os.urandom(16)
        self.nonce_prefix = nonce_prefix if nonce_prefix is not None else os.urandom(8)
        if len(self.salt) != 16 or len(self.nonce_prefix) != 8:
            raise ValueError("salt must be 16 bytes and nonce_prefix 8 bytes")
        self.header = MAGIC + struct.pack(">I", segment_size) + self.salt + self.nonce_prefix
        self._aead = _segment_key(data_key, self.salt)

    def segment(self, index: int, plaintext: bytes, final: bool) -> bytes:
        return self._aead.encrypt(*self._segment_args(index, plaintext, final))

    def segment_into(self, index: int, plaintext: Buffer, final: bool, out: memoryview) -> int:
        """`segment` written into `out` (exactly len(plaintext) + TAG_SIZE bytes), returning
        that length: the upload path builds each part in one buffer, and a fresh ciphertext
        object per segment costs an allocation (mmap, page faults) and a copy per MiB sent."""
        self._aead.encrypt_into(*self._segment_args(index, plaintext, final), out)
        return len(out)

    def _segment_args(self, index: int, plaintext: Buffer, final: bool
                      ) -> tuple[bytes, Buffer, bytes]:
        """(nonce, plaintext, aad) of segment `index`: the one place nonces and aad are made."""
        size = memoryview(plaintext).nbytes
        if size > self.segment_size or (not final and size != self.segment_size):
            raise ValueError("only the final segment may be shorter than segment_size")
        nonce = self.nonce_prefix + struct.pack(">I", index)
        return nonce, plaintext, self.header + (b"\x01" if final else b"\x00")


def encrypt_bytes(data_key: bytes, data: bytes,
                  segment_size: int = DEFAULT_SEGMENT_SIZE) -> bytes:
    """A whole small object (manifests, snapshots) in one call."""
    enc = Encryptor(data_key, segment_size)
    out = [enc.header]
    count = segment_count(len(data), segment_size)
    for i in range(count):
        chunk = data[i * segment_size:(i + 1) * segment_size]
        out.append(enc.segment(i, chunk, i == count - 1))
    return b"".join(out)


class Decryptor:
    """Streaming decryption: `feed` ciphertext in any chunking, then `finish`.

    A segment is released only once the next byte proves it is not the last one, so the caller
    never sees plaintext from an object that later turns out truncated at a segment boundary --
    but it does see earlier segments: write to a temporary file and keep it only after `finish`.
    """

    def __init__(self, data_key: bytes) -> None:
        self._data_key = data_key
        self._buf = bytearray()
        self._aead: AESGCM | None = None
        self._header = b""
        self._chunk = 0
        self._index = 0
        self._prefix = b""

    def _read_header(self) -> None:
        header = bytes(self._buf[:HEADER_SIZE])
        if header[:8] != MAGIC:
            raise DecryptError("not a davsync encrypted object (bad magic)")
        (segment_size,) = struct.unpack(">I", header[8:12])
        if not 0 < segment_size <= 64 << 20:
            raise DecryptError("implausible segment size in header")
        self._header = header
        self._chunk = segment_size + TAG_SIZE
        self._prefix = header[28:36]
        self._aead = _segment_key(self._data_key, header[12:28])
        del self._buf[:HEADER_SIZE]

    def _open(self, data: bytes, final: bool) -> bytes:
        assert self._aead is not None
        nonce = self._prefix + struct.pack(">I", self._index)
        try:
            plain = self._aead.decrypt(nonce, data, self._header + (b"\x01" if final else b"\x00"))
        except InvalidTag:
            what = "final " if final else ""
            raise DecryptError(
                f"{what}segment {self._index} failed authentication "
                "(tampered, truncated or reordered data, or another key)"
            ) from None
        self._index += 1
        return plain

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf += data
        if self._aead is None:
            if len(self._buf) < HEADER_SIZE:
                return
            self._read_header()
        while len(self._buf) > self._chunk:
            chunk = bytes(self._buf[:self._chunk])
            del self._buf[:self._chunk]
            yield self._open(chunk, final=False)

    def finish(self) -> bytes:
        if self._aead is None:
            raise DecryptError("object is shorter than the header (truncated)")
        if len(self._buf) < TAG_SIZE:
            raise DecryptError("object is truncated (final segment missing)")
        data = bytes(self._buf)
        self._buf.clear()
        return self._open(data, final=True)


def decrypt_bytes(data_key: bytes, blob: bytes) -> bytes:
    dec = Decryptor(data_key)
    out = list(dec.feed(blob))
    out.append(dec.finish())
    return b"".join(out)
