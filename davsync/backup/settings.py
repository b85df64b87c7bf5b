"""What a backup or restore needs to know, as values: `davsync.app.backup.parse_backup` builds
a `BackupConfig` from the `[backup]` table (the backup room never reads the configuration);
secrets are resolved only when asked for, through the functions it is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from davsync.secret import Secret

CATEGORIES = ("images", "videos", "documents")
SNAPSHOT_CATEGORIES = ("contacts", "calendars")
ALL_CATEGORIES = CATEGORIES + SNAPSHOT_CATEGORIES


class EncryptionMode(StrEnum):
    """Who encrypts the backup (`[backup] encryption`)."""

    CLIENT = "client"  # davsync encrypts before upload; the store sees only ciphertext
    SSE_C = "sse-c"  # the S3 store encrypts with a key davsync sends with every request


@dataclass(frozen=True)
class BackupConfig:
    endpoint: str | None
    bucket: str
    prefix: str
    region: str
    encryption: EncryptionMode
    roots: dict[str, list[Path]]
    unmetered_only: bool
    retention_days: int
    concurrency: int
    part_size: int
    state_dir: Path
    contacts_dir: Path | None
    calendars_dir: Path | None
    where: str
    # Resolved on demand (a command may run a program or prompt): the passphrase, and the
    # (access key, secret key) pair or None for the standard AWS chain.
    passphrase_source: Callable[[], Secret] = field(repr=False)
    credentials_source: Callable[[], tuple[str, Secret] | None] = field(repr=False)

    def passphrase(self) -> Secret:
        return self.passphrase_source()

    def credentials(self) -> tuple[str, Secret] | None:
        """(access key, secret key) from the config, or None for the standard AWS chain."""
        return self.credentials_source()


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
