from __future__ import annotations

import pytest

from davsync.backup.keys import KdfParams, KeyInfo, KeyInfoError, new_keyinfo, unlock
from davsync.secret import Secret

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASS = Secret("Corr3ct-horse")


def test_keyinfo_round_trip_verifies_right_and_rejects_wrong_passphrase() -> None:
    info, keys = new_keyinfo(PASS, "client", FAST)
    again = KeyInfo.from_bytes(info.to_bytes())
    assert again == info
    unlocked = unlock(again, PASS)
    assert unlocked is not None and unlocked.data == keys.data
    assert unlock(again, Secret("Wr0ng-horse")) is None


def test_keyinfo_holds_no_key_material_and_keys_do_not_print() -> None:
    info, keys = new_keyinfo(PASS, "sse-c", FAST)
    raw = info.to_bytes()
    for secret in (keys.data, keys.names, keys.sse_c):
        assert secret not in raw and secret.hex().encode() not in raw
    assert "Corr3ct" not in raw.decode()
    assert repr(keys) == "Keys(******)"
    assert len({keys.data, keys.names, keys.sse_c, keys.verifier}) == 4
    assert all(len(k) == 32 for k in (keys.data, keys.names, keys.sse_c))


def test_object_names_are_stable_opaque_and_keyed() -> None:
    _, a = new_keyinfo(PASS, "client", FAST)
    _, b = new_keyinfo(PASS, "client", FAST)   # another salt, so another key
    name = a.object_name("file\0images\0Pictures/holiday.jpg")
    assert name == a.object_name("file\0images\0Pictures/holiday.jpg")
    assert name != b.object_name("file\0images\0Pictures/holiday.jpg")
    assert "holiday" not in name and len(name) == 40


@pytest.mark.parametrize("blob", [b"not json", b"{}", b'{"format": "davsync-backup-keyinfo", '
                                  b'"version": 99}'])
def test_malformed_keyinfo_is_a_keyinfo_error(blob: bytes) -> None:
    with pytest.raises(KeyInfoError):
        KeyInfo.from_bytes(blob)
