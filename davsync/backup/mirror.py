"""What the bucket holds beside the data: the manifest, the index's copy of it, the cached
key-info, and the housekeeping of objects no record needs (strays, packs, expired versions)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING

from davsync.backup.index import Index
from davsync.backup.keys import KeyInfo, KeyInfoError, Keys, unlock
from davsync.backup.manifest import Manifest, ManifestError, Snapshot
from davsync.backup.model import Record, ScannedFile
from davsync.backup.repo import (
    MANIFEST,
    Repository,
    WrongPassphrase,
    repository_identity,
)
from davsync.backup.settings import BackupConfig
from davsync.backup.store import NotFound, StoreError
from davsync.errors import ConfigError, DavsyncError
from davsync.secret import Secret

if TYPE_CHECKING:
    pass



log = logging.getLogger(__name__)
def unlock_cached(cfg: BackupConfig, index: Index,
                  passphrase: Secret) -> tuple[KeyInfo, Keys] | None:
    """Verify the passphrase against the key-info this index saw last time, without a request.

    None when there is no usable copy (first run, another bucket): the caller asks the bucket.
    """
    cached = index.get_meta("keyinfo")
    if cached is None:
        return None
    try:
        info = KeyInfo.from_bytes(cached.encode())
    except KeyInfoError:
        return None
    if index.get_meta("identity") != repository_identity(cfg, info):
        return None
    keys = unlock(info, passphrase)
    if keys is None:
        raise WrongPassphrase(f"wrong backup passphrase for bucket {cfg.bucket!r} (the "
                              "key-info verifier does not match); check [backup] "
                              "passphrase/passphrase_command")
    if info.encryption != cfg.encryption:
        raise ConfigError(f"{cfg.where} encryption: this backup was made with "
                          f"encryption = \"{info.encryption}\", not \"{cfg.encryption}\"")
    return info, keys



def load_snapshot_meta(index: Index, category: str) -> Snapshot | None:
    raw = index.get_meta(f"snapshot:{category}")
    return None if raw is None else Snapshot(**json.loads(raw))


def write_manifest(repo: Repository, index: Index, now: float) -> None:
    snaps = {c: s for c in ("contacts", "calendars") if (s := load_snapshot_meta(index, c))}
    manifest = Manifest(index.records(), snaps, index.garbage(), now)
    repo.store.put(MANIFEST, repo.seal(manifest.to_bytes()))


def read_manifest(repo: Repository) -> Manifest | None:
    try:
        blob = repo.store.get(MANIFEST)
    except NotFound:
        return None
    from davsync.backup.format import DecryptError

    try:
        return Manifest.from_bytes(repo.unseal(blob))
    except (DecryptError, ManifestError) as exc:
        raise DavsyncError(f"{repo.store.where}: the manifest cannot be read: {exc}") from None


def import_manifest(repo: Repository, index: Index) -> None:
    """A new or reset index starts from the bucket's manifest, so nothing is sent twice."""
    manifest = read_manifest(repo)
    if manifest is None:
        return
    with index.transaction():
        for rec in manifest.files:
            index.put_record(rec)
        for obj, since in manifest.garbage:
            index.add_garbage(obj, since)
        for category, snap in manifest.snapshots.items():
            index.set_meta(f"snapshot:{category}", json.dumps(asdict(snap)))
    log.info("backup: index rebuilt from the manifest (%d files)", len(manifest.files))


def iter_live(manifest: Manifest) -> Iterator[Record]:
    return (r for r in manifest.files if r.deleted_at is None)


def abort_strays(repo: Repository, index: Index) -> None:
    """Multipart uploads under our prefix that no index row can resume (a lost index)."""
    known = {m.upload_id for m in index.multiparts()}
    try:
        uploads = repo.store.list_multipart_uploads()
    except StoreError as exc:
        log.info("cannot list unfinished uploads: %s", exc)
        return
    for name, upload_id in uploads:
        if upload_id not in known and name.startswith("data/"):
            repo.store.abort_multipart(name, upload_id)



def expire(index: Index, rec: Record) -> None:
    """Forget the record; its object goes once no record (pack member) needs it."""
    with index.transaction():
        index.drop_record(rec)
        index.add_garbage(rec.object, rec.deleted_at or 0.0)



def recover_packs(repo: Repository, index: Index, scanned: list[ScannedFile]) -> None:
    """Packs an interrupted run stored but did not record: keep the members whose files
    are unchanged (nothing is sent twice); an unusable pack becomes garbage at once."""
    pending = index.pending_packs()
    if not pending:
        return
    current = {(f.category, f.name): f for f in scanned}
    known = {r.key: r for r in index.records()}
    for obj, size, members in pending:
        stored = repo.store.head(obj) == size
        with index.transaction():
            for m in members if stored else []:
                f = current.get(m.key)
                if f is None or (f.size, f.mtime_ns, f.inode) != (m.size, m.mtime_ns,
                                                                   m.inode):
                    continue
                prev = known.get(m.key)
                index.put_record(m)
                if prev is not None and prev.object != m.object:
                    index.add_garbage(prev.object, m.uploaded_at)
            index.drop_pending(obj)
            if stored:
                index.add_garbage(obj, 0.0)   # deleted only if no member was kept



def collect_garbage(repo: Repository, index: Index, now: float, retention: float) -> None:
    """Delete objects no record needs once they have been garbage for `retention` seconds."""
    referenced = index.referenced()
    for obj, since in index.garbage():
        if obj in referenced:
            index.drop_garbage(obj)
        elif now - since >= retention:
            try:
                repo.store.delete(obj)
                index.drop_garbage(obj)
            except StoreError as exc:
                log.warning("backup: cannot remove an old version yet: %s", exc)

