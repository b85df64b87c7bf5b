"""Removing an account: its Radicale collections and its credentials, as one admin action."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from davsync.server.store import CredentialStore

log = logging.getLogger(__name__)

_USERNAME = re.compile(r"^[a-z0-9]{1,64}$")


def check_username(username: str) -> str:
    """A safe Radicale path component; ValueError names the rule."""
    if not _USERNAME.match(username):
        raise ValueError(f"{username!r} is not a davsync username (1-64 lower-case letters and "
                         "digits)")
    return username


def user_collections(collections_dir: Path, username: str) -> Path:
    """Radicale's folder for one user (multifilesystem layout: collection-root/<user>)."""
    return collections_dir / "collection-root" / check_username(username)


def delete_account(
    store: CredentialStore, storage: Any, collections_dir: Path, username: str
) -> bool:
    """Revoke every device, then delete the collections under Radicale's write lock.

    Credentials go first, so no device can write while the folder is being removed.
    Returns False if neither credentials nor collections existed.
    """
    folder = user_collections(collections_dir, username)
    had_credentials = store.delete_account(username)
    with storage.acquire_lock("w", username):
        had_collections = folder.exists()
        if had_collections:
            shutil.rmtree(folder)
    log.info("deleted account %s (credentials: %s, collections: %s)",
             username, had_credentials, had_collections)
    return had_credentials or had_collections
