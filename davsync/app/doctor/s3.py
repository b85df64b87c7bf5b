"""The doctor's checks of `[backup]`: the S3 endpoint answers, the bucket exists and takes a
write, SSE-C is honoured when configured, the passphrase verifies against the repository's
key-info, and what `unmetered_only` means on this network now.

The bucket is never created here and nothing of the backup is touched: writability is tested
with a small probe object of the doctor's own under the prefix, deleted at once.
"""

from __future__ import annotations

import os
import secrets
import shutil
from typing import TYPE_CHECKING, Final

from davsync.app.doctor import Found, Group
from davsync.backup.settings import BackupConfig
from davsync.backup.store import AccessDenied, BlobStore, NotFound, OpenedStore, StoreError
from davsync.config import Config
from davsync.errors import DavsyncError

if TYPE_CHECKING:
    from davsync.backup.s3 import S3Store

# The longest the doctor waits for one S3 answer (boto3 connects within 10 s or gives up).
READ_TIMEOUT: Final = 15.0
_PROBE: Final = b"davsync doctor probe: safe to delete\n"


def s3_group(config: Config) -> Group:
    return lambda found: check_backup(config, found)


def check_backup(config: Config, found: Found) -> None:
    from davsync.app.backup_config import parse_backup
    from davsync.backup.s3 import S3Store, make_client

    try:
        cfg = parse_backup(config)
        client = make_client(cfg.endpoint, cfg.region, cfg.credentials(), max_connections=2,
                             timeout=READ_TIMEOUT)
    except DavsyncError as exc:
        found.fail("backup config", str(exc))
        return
    try:
        store = S3Store(client, cfg.bucket, cfg.prefix)
        if _check_bucket(store, found):
            _check_write(store, found)
            if cfg.encryption == "sse-c":
                _check_sse_c(store, found)
            _check_passphrase(cfg, store, found)
    finally:
        client.close()
    _check_unmetered(cfg, found)


def _check_bucket(store: S3Store, found: Found) -> bool:
    try:
        store.head_bucket()
    except NotFound:
        found.ok("backup endpoint", f"{store.client.meta.endpoint_url} answers")
        found.fail("backup bucket", f"{store.where}: the bucket does not exist; create it, or "
                   "correct [backup] bucket (`davsync backup` creates it when the credentials "
                   "allow)")
        return False
    except AccessDenied as exc:
        found.fail("backup endpoint", f"{exc}; check [backup] access_key/secret_key")
        return False
    except StoreError as exc:
        found.fail("backup endpoint", f"{exc}; check [backup] endpoint and the network")
        return False
    found.ok("backup endpoint", f"{store.client.meta.endpoint_url} answers")
    found.ok("backup bucket", f"{store.where} exists")
    return True


def _probe_name() -> str:
    return f"doctor-probe-{secrets.token_hex(8)}"


def _check_write(store: BlobStore, found: Found) -> None:
    name = _probe_name()
    try:
        store.put(name, _PROBE)
    except StoreError as exc:
        found.fail("backup write", f"{exc}; the credentials need permission to put and delete "
                   "objects in the bucket")
        return
    if _delete(store, name, "backup write", found):
        found.ok("backup write", "put and deleted a probe object under the prefix")


def _delete(store: BlobStore, name: str, check: str, found: Found) -> bool:
    try:
        store.delete(name)
    except StoreError as exc:
        found.fail(check, f"{exc}; the probe object {name!r} is left behind (safe to delete); "
                   "the credentials need permission to delete objects (retention does)")
        return False
    return True


def _check_sse_c(store: S3Store, found: Found) -> None:
    """Put and read back a probe object under a random key of the doctor's own; the same read
    without the key must be refused, or the server ignores SSE-C and stores plaintext."""
    name = _probe_name()
    keyed = store.with_sse_c(os.urandom(32))
    try:
        keyed.put(name, _PROBE)
        same = keyed.get(name) == _PROBE
    except StoreError as exc:
        found.fail("backup sse-c", f"{exc}; the server does not accept SSE-C: use encryption "
                   "= \"client\" (or a server that supports SSE-C)")
        _delete(store, name, "backup sse-c", found)
        return
    try:
        store.get(name)
        ignored = True
    except StoreError:
        ignored = False
    if not _delete(store, name, "backup sse-c", found):
        return
    if ignored or not same:
        found.fail("backup sse-c", "the server returns SSE-C objects without their key: it "
                   "does not honour SSE-C; use encryption = \"client\"")
        return
    found.ok("backup sse-c", "the server encrypts with the key sent and refuses reads without it")


def _check_passphrase(cfg: BackupConfig, store: S3Store, found: Found) -> None:
    """Unlock the repository as a backup would (`backup.repo.open_repository`), with its
    messages: wrong passphrase, passphrase policy, an encryption mode that differs."""
    from davsync.backup.repo import NoBackup, open_repository

    try:
        repo = open_repository(cfg, lambda: OpenedStore(store, lambda: None), create=False)
    except NoBackup:
        found.note("backup passphrase", f"{store.where}: no backup yet (no key-info object); "
                   "the first `davsync backup` creates it with this passphrase")
        return
    except DavsyncError as exc:
        found.fail("backup passphrase", str(exc))
        return
    found.ok("backup passphrase", f"verifies against the repository's key-info "
             f"({repo.encryption} encryption)")


def _check_unmetered(cfg: BackupConfig, found: Found) -> None:
    if not cfg.unmetered_only:
        found.ok("backup network", "unmetered_only = false: backups run on any network")
        return
    if shutil.which("nmcli") is None:
        found.note("backup network", "unmetered_only = true, but NetworkManager (nmcli) is not "
                   "installed: every network counts as unmetered")
        return
    from davsync.backup.network import MeteredCheck

    if MeteredCheck()():
        found.note("backup network", "unmetered_only = true and the network is metered now: "
                   "backups wait for an unmetered one")
    else:
        found.ok("backup network", "unmetered_only = true; the network is unmetered now")
