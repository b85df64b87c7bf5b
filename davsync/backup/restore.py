"""`davsync restore`: the manifest's live files and the snapshots, written below one folder.

Every file is verified (AEAD per segment in client mode; size and SHA-256 against the manifest
in both modes) into a temporary file that replaces the target only when complete, so a failed
file leaves nothing half-written. Names that would leave the folder are refused, and the
reasons are collected per file while the rest carries on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import secrets
import stat
import tarfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from davsync.backup.format import DecryptError, Decryptor
from davsync.backup.keys import KdfParams
from davsync.backup.manifest import Manifest, Snapshot
from davsync.backup.model import Record
from davsync.backup.progress import Progress
from davsync.backup.repo import NoBackup, Repository, StoreWrapper, open_repository
from davsync.backup.runner import iter_live, read_manifest
from davsync.backup.settings import ALL_CATEGORIES, CATEGORIES, BackupConfig
from davsync.backup.snapshot import count_items, tar_digest
from davsync.backup.stats import COMPLETED, IN_PROGRESS, Stats, StatsFile
from davsync.backup.store import StoreError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
RANGE_MAX = 2 << 20


class UnsafeName(ValueError):
    """A name that would put a file outside the restore folder."""


def safe_parts(name: str) -> list[str]:
    """The path components of a stored name, or UnsafeName saying why it is refused (pure).

    POSIX rules: `/` is the only separator, so a backslash or a colon is an ordinary character.
    """
    if not name or "\0" in name:
        raise UnsafeName("empty name or NUL byte")
    if name.startswith("/"):
        raise UnsafeName("absolute path")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeName("'..', '.' or empty path component")
    return parts


def prepare_target(base: Path, parts: list[str]) -> Path:
    """Create the parent folders below `base`, refusing to pass through any symbolic link."""
    cur = base
    for comp in [*parts[:-1], None]:
        with contextlib.suppress(FileExistsError):  # another worker may create it meanwhile
            os.mkdir(cur, 0o755)
        st = os.lstat(cur)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeName(f"{cur} is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeName(f"{cur} exists and is not a folder")
        if comp is not None:
            cur = cur / comp
    target = base.joinpath(*parts)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeName(f"{target} is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeName(f"{target} exists and is not a regular file")
    return target


def write_verified(target: Path, chunks: Iterable[bytes], size: int, sha256: str,
                   mtime_ns: int, on_bytes: Callable[[int], None] = lambda n: None) -> None:
    """Write to a temporary file beside `target`; replace `target` only if size and hash match."""
    tmp = target.with_name(f".{target.name}.davsync-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                on_bytes(len(chunk))
        if written != size or digest.hexdigest() != sha256:
            raise DecryptError(f"content does not match the manifest ({written} of {size} "
                               "bytes, or another SHA-256): tampered or truncated")
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class RestoreOptions:
    kdf: KdfParams | None = None
    wrap: StoreWrapper | None = None
    progress: bool = True


class RestoreRun:
    def __init__(self, cfg: BackupConfig, to: Path, categories: Iterable[str] | None = None,
                 opts: RestoreOptions | None = None) -> None:
        self.cfg = cfg
        self.to = to
        self.categories = list(categories or ALL_CATEGORIES)
        self.opts = opts or RestoreOptions()
        self.stats = Stats()
        self.stats_file = StatsFile(cfg.state_dir)

    def run(self) -> Stats:
        self.stats.started_at = time.time()
        repo = open_repository(self.cfg, create=False, kdf=self.opts.kdf, wrap=self.opts.wrap)
        try:
            manifest = read_manifest(repo)
            if manifest is None:
                raise NoBackup(f"{repo.store.where}: no manifest yet (no backup has finished)")
            self.to.mkdir(parents=True, exist_ok=True)
            self._files(repo, manifest)
            for category in ("contacts", "calendars"):
                if category in self.categories:
                    self._snapshot(repo, manifest.snapshots.get(category), category)
        finally:
            repo.close()
            self.stats_file.write("restore", self.stats, force=True)
        return self.stats

    def _files(self, repo: Repository, manifest: Manifest) -> None:
        wanted = [r for r in iter_live(manifest) if r.category in self.categories]
        cats = self.stats.categories
        for c in CATEGORIES:
            if c in self.categories:
                cats[c].status = IN_PROGRESS
        for rec in wanted:
            cats[rec.category].total_files += 1
        progress = Progress("restore", enabled=self.opts.progress)
        progress.start(len(wanted), sum(r.size for r in wanted))
        self.stats_file.write("restore", self.stats, force=True)
        small: dict[str, list[Record]] = {}
        large: list[Record] = []
        for rec in wanted:
            if rec.offset or rec.stored_size <= RANGE_MAX:
                small.setdefault(rec.object, []).append(rec)
            else:
                large.append(rec)
        with ThreadPoolExecutor(self.cfg.concurrency, "restore") as pool:
            jobs = [pool.submit(self._pack, repo, members, progress)
                    for members in small.values()]
            jobs += [pool.submit(lambda r: [(r, self._one(repo, r, progress))], rec)
                     for rec in large]
            for fut in as_completed(jobs):
                for rec, error in fut.result():
                    self._count(rec, error, progress)
                self.stats_file.write("restore", self.stats)
        progress.close()
        for c in CATEGORIES:
            if c in self.categories:
                cats[c].status = COMPLETED
                cats[c].last_modified = time.time()

    def _count(self, rec: Record, error: str | None, progress: Progress) -> None:
        progress.file_done()
        cat = self.stats.categories[rec.category]
        cat.last_modified = time.time()
        if error is None:
            cat.succeeded_files += 1
            cat.bytes_processed += rec.size
        else:
            log.warning("restore: %s/%s: %s", rec.category, rec.name, error)
            cat.fail(f"{rec.category}/{rec.name}", error)

    def _pack(self, repo: Repository, members: list[Record],
              progress: Progress) -> list[tuple[Record, str | None]]:
        """Small files sharing one object: one ranged GET covering all of them, then each
        file is cut out, verified and written on its own."""
        start = min(r.offset for r in members)
        end = max(r.offset + r.stored_size for r in members)
        try:
            blob = repo.store.get_range(members[0].object, start, end - start)
        except StoreError as exc:
            return [(r, f"cannot download: {exc}") for r in members]
        return [(r, self._one(repo, r, progress, blob[r.offset - start:
                                                         r.offset - start + r.stored_size]))
                for r in members]

    def _one(self, repo: Repository, rec: Record, progress: Progress,
             blob: bytes | None = None) -> str | None:
        """None when restored, else the reason it was not. `blob` is the stored bytes when the
        caller already has them (packs); otherwise they are streamed."""
        try:
            base = self.to / rec.category
            target = prepare_target(base, safe_parts(rec.name))
            chunks: Iterable[bytes]
            chunks = [blob] if blob is not None else repo.store.stream(rec.object, CHUNK + 64)
            if repo.client_side:
                chunks = _decrypt(repo.keys.data, chunks)
            write_verified(target, chunks, rec.size, rec.sha256, rec.mtime_ns, progress.advance)
        except UnsafeName as exc:
            return f"refused: the name would leave {self.to} ({exc})"
        except DecryptError as exc:
            return f"not restored: {exc}"
        except StoreError as exc:
            return f"cannot download: {exc}"
        except OSError as exc:
            return f"cannot write: {exc.strerror or exc}"
        return None

    def _snapshot(self, repo: Repository, snap: Snapshot | None, category: str) -> None:
        cat = self.stats.categories[category]
        cat.status = IN_PROGRESS
        if snap is not None:
            try:
                tar = repo.unseal(repo.store.get(snap.object))
                if tar_digest(tar) != snap.sha256:
                    raise DecryptError("content does not match the manifest: tampered or "
                                       "truncated")
                self._extract(tar, category)
            except (DecryptError, StoreError, tarfile.TarError) as exc:
                cat.fail(category, f"snapshot not restored: {exc}")
                cat.failed_items = snap.items
        cat.status = COMPLETED
        cat.last_modified = time.time()

    def _extract(self, tar_bytes: bytes, category: str) -> None:
        cat = self.stats.categories[category]
        texts = []
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar.getmembers():
                cat.total_files += 1
                where = f"{category}/{member.name}"
                if not member.isreg():
                    cat.fail(where, "refused: not a regular file (links are never restored)")
                    continue
                data = tar.extractfile(member)
                content = data.read() if data is not None else b""
                try:
                    target = prepare_target(self.to / category, safe_parts(member.name))
                    mtime = int(member.mtime) * 1_000_000_000
                    write_verified(target, [content], len(content),
                                   hashlib.sha256(content).hexdigest(), mtime)
                except UnsafeName as exc:
                    cat.fail(where, f"refused: the name would leave {self.to} ({exc})")
                    continue
                except OSError as exc:
                    cat.fail(where, f"cannot write: {exc.strerror or exc}")
                    continue
                cat.succeeded_files += 1
                cat.bytes_processed += len(content)
                texts.append(content.decode("utf-8", "replace"))
        cat.succeeded_items = count_items("\n".join(texts), category)
        cat.total_items = cat.succeeded_items + cat.failed_items


def _decrypt(key: bytes, chunks: Iterable[bytes]) -> Iterable[bytes]:
    dec = Decryptor(key)
    for chunk in chunks:
        yield from dec.feed(chunk)
    yield dec.finish()
