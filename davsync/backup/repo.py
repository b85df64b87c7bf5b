"""Opening the backup repository: passphrase policy, key-info, verifier, then the data store.

The order is the contract with the user: the passphrase policy is checked before any network
call; the key-info object is read before any data object, so "wrong passphrase" (exit 4) and
"cannot verify the passphrase" (exit 3) are both known before anything is read or written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from davsync.backup.keys import KdfParams, KeyInfo, KeyInfoError, Keys, new_keyinfo, unlock
from davsync.backup.policy import check_passphrase
from davsync.backup.settings import BackupConfig
from davsync.backup.store import (
    AccessDenied,
    BlobStore,
    EncryptableStore,
    NotFound,
    RetryingStore,
    StoreError,
    StoreFactory,
)
from davsync.errors import (
    EXIT_WRONG_PASSPHRASE,
    AuthError,
    ConfigError,
    DavsyncError,
    UnreachableError,
)
from davsync.secret import Secret

log = logging.getLogger(__name__)
KEYINFO = "keyinfo"
MANIFEST = "manifest"
StoreWrapper = Callable[[BlobStore], BlobStore]


class WrongPassphrase(DavsyncError):
    """The passphrase does not match the bucket's key-info verifier."""

    exit_code = EXIT_WRONG_PASSPHRASE


class NoBackup(DavsyncError):
    """There is no davsync backup at the configured bucket and prefix."""

    exit_code = 2


@dataclass
class Repository:
    """An unlocked bucket: `store` carries SSE-C when that is the mode; `seal`/`unseal`
    apply client encryption to small objects (manifest, snapshots) when that is the mode."""

    store: BlobStore
    keys: Keys
    keyinfo: KeyInfo
    encryption: str
    identity: str
    close: Callable[[], None] = lambda: None

    @property
    def client_side(self) -> bool:
        return self.encryption == "client"

    def seal(self, data: bytes) -> bytes:
        from davsync.backup.format import encrypt_bytes

        return encrypt_bytes(self.keys.data, data) if self.client_side else data

    def unseal(self, data: bytes) -> bytes:
        from davsync.backup.format import decrypt_bytes

        return decrypt_bytes(self.keys.data, data) if self.client_side else data

    def data_object(self, label: str) -> str:
        return f"data/{self.keys.object_name(label)}"

    def snapshot_object(self, category: str) -> str:
        return "snapshots/" + self.keys.object_name("snapshot\0" + category)


def repository_identity(cfg: BackupConfig, info: KeyInfo) -> str:
    """What the local index is bound to: endpoint, bucket, prefix and the key-info's salt."""
    where = f"{cfg.endpoint or ''}\0{cfg.bucket}\0{cfg.prefix}\0{info.salt.hex()}"
    return hashlib.sha256(where.encode()).hexdigest()


def open_repository(cfg: BackupConfig, open_store: StoreFactory, *, create: bool,
                    kdf: KdfParams | None = None, wrap: StoreWrapper | None = None,
                    passphrase: Secret | None = None,
                    unlocked: tuple[KeyInfo, Keys] | None = None) -> Repository:
    """Unlock the bucket `open_store` opens. `unlocked` is key-info and keys already verified
    from the index's copy; they are reused (no second KDF run) if the bucket still holds that
    key-info."""
    if passphrase is None:
        passphrase = cfg.passphrase()
        check_passphrase(passphrase, f"{cfg.where} passphrase")
    opened = open_store()
    try:
        return _unlock(cfg, opened.store, opened.close, passphrase, create, kdf, wrap, unlocked)
    except BaseException:
        opened.close()
        raise


def _unlock(cfg: BackupConfig, raw: EncryptableStore, close: Callable[[], None],
            passphrase: Secret, create: bool, kdf: KdfParams | None,
            wrap: StoreWrapper | None, unlocked: tuple[KeyInfo, Keys] | None) -> Repository:
    plain: BlobStore = RetryingStore(raw)
    where = raw.where
    try:
        try:
            info = KeyInfo.from_bytes(plain.get(KEYINFO))
            keys = unlocked[1] if unlocked and unlocked[0] == info else unlock(info, passphrase)
        except NotFound:
            if not create:
                raise NoBackup(f"{where}: no davsync backup here (no key-info object); "
                               "check [backup] bucket and prefix, or run `davsync backup` "
                               "first") from None
            plain.ensure_bucket()
            info, keys = new_keyinfo(passphrase, cfg.encryption, kdf)
            plain.put(KEYINFO, info.to_bytes())
            log.info("%s: created a new backup repository (%s encryption)", where, cfg.encryption)
    except AccessDenied as exc:
        raise AuthError(f"cannot verify the passphrase: the server refused the credentials "
                        f"({exc}); check [backup] access_key/secret_key") from None
    except StoreError as exc:
        raise UnreachableError(f"cannot verify the passphrase: {exc}; "
                               "check [backup] endpoint and the network") from None
    except KeyInfoError as exc:
        raise UnreachableError(f"cannot verify the passphrase: {where}: key-info object: "
                               f"{exc}") from None
    if keys is None:
        raise WrongPassphrase(f"wrong backup passphrase for {where} (the key-info verifier "
                              "does not match); check [backup] passphrase/passphrase_command")
    if info.encryption != cfg.encryption:
        raise ConfigError(f"{cfg.where} encryption: this backup was made with "
                          f"encryption = \"{info.encryption}\", not \"{cfg.encryption}\"")
    store: BlobStore = raw.with_sse_c(keys.sse_c) if info.encryption == "sse-c" else raw
    if wrap is not None:
        store = wrap(store)
    return Repository(RetryingStore(store), keys, info, info.encryption,
                      repository_identity(cfg, info), close)
