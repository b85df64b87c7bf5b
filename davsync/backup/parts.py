"""Building an upload's parts: a file read one segment at a time into the bytes a part
stores (encrypted when the repository is client-side), and the size a stored part must have.

Memory stays bounded: at most one segment of plaintext exists beside the part being built.
"""

from __future__ import annotations

import hashlib
from io import BufferedReader
from typing import TYPE_CHECKING

from davsync.backup.scan import FileChanged

if TYPE_CHECKING:
    from davsync.backup.format import Encryptor

SEGMENT = 1 << 20   # format.DEFAULT_SEGMENT_SIZE; format (and OpenSSL) loads only to upload
_TAG = 16  # format.TAG_SIZE: the AEAD tag after each encrypted segment


def read_part(fh: BufferedReader, enc: Encryptor | None, number: int, per_part: int,
              total_segments: int, digest: hashlib._Hash, keep: bool) -> tuple[bytearray, int]:
    """Part `number` (1-based) as stored, read (and encrypted) one segment at a time straight
    into one buffer, so that at most one segment of plaintext exists beside it and no
    segment is allocated or copied twice; with `keep` False only the hash is updated."""
    first = (number - 1) * per_part
    segments = range(first, min(first + per_part, total_segments))
    header = enc.header if enc is not None and number == 1 and keep else b""
    tag = _TAG if enc is not None else 0
    body = bytearray(len(header) + len(segments) * (SEGMENT + tag) if keep else 0)
    body[:len(header)] = header
    plain = bytearray(SEGMENT) if enc is not None or not keep else body
    pos, plain_len = len(header), 0
    with memoryview(body) as out, memoryview(plain) as scratch:
        for index in segments:
            # Every view of `body` is released before it is trimmed (a live one forbids it).
            with out[pos:pos + SEGMENT] if plain is body else scratch[:] as into:
                n = fh.readinto(into)
                final = index == total_segments - 1
                if n < SEGMENT and not final:
                    raise FileChanged("changed size while being read; it will be backed up "
                                      "on the next run")
                digest.update(into[:n])
                plain_len += n
                if enc is not None and keep:
                    pos += enc.segment_into(index, into[:n], final, out[pos:pos + n + tag])
                elif keep:
                    pos += n
    del body[pos:]
    return body, plain_len


def stored_part_size(part_size: int, number: int, part_count: int, size: int,
                     client_side: bool) -> int:
    """Stored size of part `number`: what ListParts must report for it to count as done."""
    plain = part_size if number < part_count else size - part_size * (part_count - 1)
    if not client_side:
        return plain
    header = 36 if number == 1 else 0
    return header + plain + _TAG * -(-plain // SEGMENT)
