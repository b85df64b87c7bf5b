"""Backup and restore wired from `[backup]`: the S3 store is built here and nowhere else.

The backup room (davsync/backup) takes the BackupConfig values and a StoreFactory; which
store that is (S3 today) is decided here, so another BlobStore needs no change there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from davsync.backup.keys import KdfParams
from davsync.backup.repo import Repository, open_repository
from davsync.backup.settings import BackupConfig
from davsync.backup.store import OpenedStore, StoreFactory

if TYPE_CHECKING:
    from davsync.backup.restore import RestoreOptions, RestoreRun
    from davsync.backup.run import BackupRun, RunOptions


def s3_store(cfg: BackupConfig) -> StoreFactory:
    """Opens the configured S3 bucket when called; boto3 (0.3 s to import) only then."""

    def open_store() -> OpenedStore:
        from davsync.app import recording
        from davsync.backup.s3 import S3Store, make_client

        credentials = cfg.credentials()
        client = make_client(cfg.endpoint, cfg.region, credentials,
                             max_connections=cfg.concurrency * 2 + 4)
        recording.add_secret(credentials[1].reveal() if credentials else None)
        recording.watch_s3(client)
        return OpenedStore(S3Store(client, cfg.bucket, cfg.prefix), client.close)

    return open_store


def backup_run(cfg: BackupConfig, opts: RunOptions | None = None) -> BackupRun:
    from davsync.backup.run import BackupRun

    return BackupRun(cfg, s3_store(cfg), opts)


def restore_run(cfg: BackupConfig, to: Path, categories: Iterable[str] | None = None,
                opts: RestoreOptions | None = None) -> RestoreRun:
    from davsync.backup.restore import RestoreRun

    return RestoreRun(cfg, s3_store(cfg), to, categories, opts)


def open_backup_repository(cfg: BackupConfig, *, create: bool,
                           kdf: KdfParams | None = None) -> Repository:
    """The unlocked repository, for `davsync backup key` (and tests that look inside)."""
    return open_repository(cfg, s3_store(cfg), create=create, kdf=kdf)
