"""Key derivation and the key-info object: passphrase -> master key -> purpose subkeys.

The key-info object is the only plaintext object in the bucket. It holds the KDF name and
parameters, the salt and a verifier, so that a wrong passphrase is recognised (and reported as
such) before any data object is read or written. Pure: no network, no files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from davsync.secret import Secret

KEYINFO_FORMAT = "davsync-backup-keyinfo"
KEYINFO_VERSION = 1
ENCRYPTION_MODES = ("client", "sse-c")
_VERIFIER_MESSAGE = b"davsync backup key verifier v1"


class KeyInfoError(ValueError):
    """The key-info object is not one davsync wrote (or a newer version)."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost for new repositories: 64 MiB, 1 pass, 4 lanes (about 0.08 s here).

    Every run derives the key, so this cost is most of a no-change run. 64 MiB x 1 pass is above
    OWASP's Argon2id baseline (46 MiB x 1 pass, or 19 MiB x 2) and follows RFC 9106's choice of
    one pass with as much memory as affordable. Existing repositories keep the parameters
    stored in their key-info, so raising these later never breaks an old backup.
    """

    time_cost: int = 1
    memory_kib: int = 64 * 1024
    parallelism: int = 4


@dataclass(frozen=True)
class KeyInfo:
    salt: bytes
    kdf: KdfParams
    encryption: str
    verifier: bytes

    def to_bytes(self) -> bytes:
        return json.dumps({
            "format": KEYINFO_FORMAT,
            "version": KEYINFO_VERSION,
            "encryption": self.encryption,
            "kdf": {
                "name": "argon2id", "time_cost": self.kdf.time_cost,
                "memory_kib": self.kdf.memory_kib, "parallelism": self.kdf.parallelism,
                "hash_len": 32,
            },
            "salt": base64.b64encode(self.salt).decode(),
            "verifier": base64.b64encode(self.verifier).decode(),
        }, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyInfo:
        try:
            obj: dict[str, Any] = json.loads(data)
            if obj.get("format") != KEYINFO_FORMAT:
                raise KeyInfoError("not a davsync key-info object")
            if obj.get("version") != KEYINFO_VERSION:
                raise KeyInfoError(f"key-info version {obj.get('version')} is not supported")
            kdf = obj["kdf"]
            if kdf["name"] != "argon2id" or kdf.get("hash_len", 32) != 32:
                raise KeyInfoError(f"unsupported KDF {kdf['name']!r}")
            if obj["encryption"] not in ENCRYPTION_MODES:
                raise KeyInfoError(f"unknown encryption mode {obj['encryption']!r}")
            return cls(
                salt=base64.b64decode(obj["salt"], validate=True),
                kdf=KdfParams(int(kdf["time_cost"]), int(kdf["memory_kib"]),
                              int(kdf["parallelism"])),
                encryption=str(obj["encryption"]),
                verifier=base64.b64decode(obj["verifier"], validate=True),
            )
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, KeyInfoError):
                raise
            raise KeyInfoError(f"malformed key-info object: {exc}") from None


class Keys:
    """The purpose subkeys; `repr` never shows them."""

    __slots__ = ("data", "names", "sse_c", "verifier")

    def __init__(self, master: bytes) -> None:
        self.data = _subkey(master, b"davsync v1 data")
        self.names = _subkey(master, b"davsync v1 object names")
        self.sse_c = _subkey(master, b"davsync v1 sse-c")
        self.verifier = hmac.new(_subkey(master, b"davsync v1 verifier"), _VERIFIER_MESSAGE,
                                 hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "Keys(******)"

    def object_name(self, label: str) -> str:
        """An opaque, stable object name: HMAC of what the object holds, never the label."""
        return hmac.new(self.names, label.encode(), hashlib.sha256).hexdigest()[:40]


def _subkey(master: bytes, info: bytes) -> bytes:
    # Imported here: loading OpenSSL takes 20 ms, which a no-change run spends while the
    # Argon2 thread that calls this is still busy (see BackupRun.run).
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def derive_master(passphrase: Secret, salt: bytes, kdf: KdfParams) -> bytes:
    """256-bit master key: Argon2id(passphrase, salt) with the stored parameters."""
    return bytes(hash_secret_raw(
        passphrase.reveal().encode(), salt, time_cost=kdf.time_cost, memory_cost=kdf.memory_kib,
        parallelism=kdf.parallelism, hash_len=32, type=Type.ID,
    ))


def new_keyinfo(passphrase: Secret, encryption: str,
                kdf: KdfParams | None = None) -> tuple[KeyInfo, Keys]:
    """A fresh key-info (random 16-byte salt) and the keys it verifies."""
    kdf = kdf or KdfParams()
    salt = os.urandom(16)
    keys = Keys(derive_master(passphrase, salt, kdf))
    return KeyInfo(salt, kdf, encryption, keys.verifier), keys


def unlock(info: KeyInfo, passphrase: Secret) -> Keys | None:
    """The keys if the passphrase matches the verifier, else None."""
    keys = Keys(derive_master(passphrase, info.salt, info.kdf))
    return keys if hmac.compare_digest(keys.verifier, info.verifier) else None
