from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from davsync.backup.format import (
    HEADER_SIZE,
    TAG_SIZE,
    DecryptError,
    Decryptor,
    Encryptor,
    decrypt_bytes,
    encrypt_bytes,
    encrypted_size,
)

KEY = bytes(range(32))
SEG = 64  # small segments so tests cross many boundaries


def decrypt_chunked(blob: bytes, chunk: int, key: bytes = KEY) -> bytes:
    dec = Decryptor(key)
    out = []
    for i in range(0, len(blob), chunk):
        out.extend(dec.feed(blob[i:i + chunk]))
    out.append(dec.finish())
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=SEG * 5 + 3), chunk=st.integers(1, 300))
def test_round_trip_any_size_and_chunking(data: bytes, chunk: int) -> None:
    blob = encrypt_bytes(KEY, data, SEG)
    assert len(blob) == encrypted_size(len(data), SEG)
    assert decrypt_chunked(blob, chunk) == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=SEG * 3), where=st.integers(0, 10_000))
def test_any_flipped_bit_is_detected(data: bytes, where: int) -> None:
    blob = bytearray(encrypt_bytes(KEY, data, SEG))
    blob[where % len(blob)] ^= 0x40
    with pytest.raises(DecryptError):
        decrypt_bytes(KEY, bytes(blob))


@pytest.mark.parametrize("size", [SEG * 3, SEG * 3 + 10])
def test_truncation_at_a_segment_boundary_is_detected(size: int) -> None:
    blob = encrypt_bytes(KEY, os.urandom(size), SEG)
    cut = HEADER_SIZE + 2 * (SEG + TAG_SIZE)   # two whole segments, no final one
    with pytest.raises(DecryptError, match="final"):
        decrypt_bytes(KEY, blob[:cut])
    with pytest.raises(DecryptError):
        decrypt_bytes(KEY, blob[:HEADER_SIZE - 1])


def test_reordered_segments_are_detected() -> None:
    blob = encrypt_bytes(KEY, os.urandom(SEG * 3), SEG)
    body = blob[HEADER_SIZE:]
    s = SEG + TAG_SIZE
    swapped = blob[:HEADER_SIZE] + body[s:2 * s] + body[:s] + body[2 * s:]
    with pytest.raises(DecryptError, match="segment 0"):
        decrypt_bytes(KEY, swapped)


def test_wrong_key_and_bad_magic_are_refused() -> None:
    blob = encrypt_bytes(KEY, b"hello", SEG)
    with pytest.raises(DecryptError):
        decrypt_bytes(bytes(32), blob)
    with pytest.raises(DecryptError, match="magic"):
        decrypt_bytes(KEY, b"X" + blob[1:])


def test_same_salt_and_prefix_give_the_same_bytes_so_parts_can_be_resent() -> None:
    a = Encryptor(KEY, SEG, salt=b"s" * 16, nonce_prefix=b"n" * 8)
    b = Encryptor(KEY, SEG, salt=b"s" * 16, nonce_prefix=b"n" * 8)
    assert a.header == b.header
    assert a.segment(5, b"x" * SEG, False) == b.segment(5, b"x" * SEG, False)
    assert Encryptor(KEY, SEG).header != Encryptor(KEY, SEG).header   # fresh salt per object


def test_only_the_final_segment_may_be_short() -> None:
    enc = Encryptor(KEY, SEG)
    with pytest.raises(ValueError, match="final"):
        enc.segment(0, b"short", final=False)


def test_segment_into_writes_the_same_bytes_as_segment_in_place() -> None:
    enc = Encryptor(KEY, SEG, salt=b"s" * 16, nonce_prefix=b"n" * 8)
    body = bytearray(b"?" * (3 + SEG + TAG_SIZE + 5 + TAG_SIZE))
    with memoryview(body) as out:
        first = enc.segment_into(0, b"x" * SEG, False, out[3:3 + SEG + TAG_SIZE])
        last = enc.segment_into(1, memoryview(b"tail!"), True, out[3 + first:])
    assert (first, last) == (SEG + TAG_SIZE, 5 + TAG_SIZE)
    expected = enc.segment(0, b"x" * SEG, False) + enc.segment(1, b"tail!", True)
    assert bytes(body) == b"???" + expected
    with pytest.raises(ValueError, match="final"):
        enc.segment_into(0, b"short", False, memoryview(bytearray(5 + TAG_SIZE)))
