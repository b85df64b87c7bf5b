"""Building an upload's parts: a file read one segment at a time into the bytes a part
stores (encrypted when the repository is client-side), and the size a stored part must have.

Memory stays bounded: at most one segment of plaintext exists beside the part being built.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from davsync.backup.format import Encryptor

SEGMENT = 1 << 20   # format.DEFAULT_SEGMENT_SIZE; format (and OpenSSL) loads only to upload


def read_part(fh: BinaryIO, enc: Encryptor | None, number: int, per_part: int,
              total_segments: int, digest: hashlib._Hash, keep: bool) -> tuple[bytearray, int]:
    """Part `number` (1-based) as stored, built one segment at a time so that at most one
    segment of plaintext exists beside it; with `keep` False only the hash is updated."""
    first = (number - 1) * per_part
    body = bytearray(enc.header if enc is not None and number == 1 and keep else b"")
    plain_len = 0
    for index in range(first, min(first + per_part, total_segments)):
        segment = fh.read(SEGMENT)
        digest.update(segment)
        plain_len += len(segment)
        if keep:
            body += segment if enc is None else enc.segment(
                index, segment, index == total_segments - 1)
    return body, plain_len


def stored_part_size(part_size: int, number: int, part_count: int, size: int,
                     client_side: bool) -> int:
    """Stored size of part `number`: what ListParts must report for it to count as done."""
    plain = part_size if number < part_count else size - part_size * (part_count - 1)
    if not client_side:
        return plain
    header = 36 if number == 1 else 0
    return header + plain + 16 * -(-plain // SEGMENT)
