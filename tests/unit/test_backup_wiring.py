"""The backup room takes its store from the composition root: any BlobStore will do.

An in-memory store (a unit-test stand-in; the S3 adapter is checked against a real SeaweedFS
in tests/integration/test_backup_store.py) backs up and restores through the same runs the
CLI uses, and every store a run opens is closed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from davsync.app.backup_config import parse_backup
from davsync.backup.keys import KdfParams
from davsync.backup.restore import RestoreOptions, RestoreRun
from davsync.backup.run import BackupRun, RunOptions
from davsync.backup.store import BlobStore, NotFound, OpenedStore, Part
from davsync.config import load_config

KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)


class MemoryStore:
    """Objects in a dict; multipart uploads are not needed by small files."""

    where = "memory store"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def with_sse_c(self, key: bytes) -> BlobStore:
        return self

    def ensure_bucket(self) -> None:
        pass

    def put(self, name: str, data: bytes | bytearray) -> None:
        self.objects[name] = bytes(data)

    def get(self, name: str) -> bytes:
        if name not in self.objects:
            raise NotFound(f"{self.where}: {name}: not found")
        return self.objects[name]

    def stream(self, name: str, chunk_size: int) -> Iterator[bytes]:
        data = self.get(name)
        for i in range(0, len(data), chunk_size):
            yield data[i:i + chunk_size]

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.get(name)[offset:offset + length]

    def head(self, name: str) -> int | None:
        return len(self.get(name))

    def delete(self, name: str) -> None:
        self.objects.pop(name, None)

    def create_multipart(self, name: str) -> str:
        raise NotImplementedError

    def upload_part(self, name: str, upload_id: str, number: int,
                    data: bytes | bytearray) -> Part:
        raise NotImplementedError

    def list_parts(self, name: str, upload_id: str) -> list[Part]:
        raise NotFound(f"{self.where}: {name}: no such upload")

    def complete_multipart(self, name: str, upload_id: str, parts: list[Part]) -> None:
        raise NotImplementedError

    def abort_multipart(self, name: str, upload_id: str) -> None:
        pass

    def list_multipart_uploads(self) -> list[tuple[str, str]]:
        return []


def test_a_run_backs_up_and_restores_through_the_store_it_is_given(tmp_path: Path) -> None:
    pictures = tmp_path / "Pictures"
    pictures.mkdir()
    (pictures / "a.jpg").write_bytes(b"picture bytes" * 100)
    config = tmp_path / "config.toml"
    config.write_text(f"""
[state]
dir = "{tmp_path / "state"}"

[backup]
endpoint = "http://127.0.0.1:9"
bucket = "unused"
passphrase = "Corr3ct-Horse-battery"
images = ["{pictures}"]
""", encoding="utf-8")
    config.chmod(0o600)
    cfg = parse_backup(load_config(config))
    store = MemoryStore()
    closed: list[str] = []

    def open_store() -> OpenedStore:
        return OpenedStore(store, lambda: closed.append("closed"))

    stats = BackupRun(cfg, open_store, RunOptions(kdf=KDF, progress=False)).run().to_json()
    assert stats["succeeded_files"] == stats["total_files"] == 1
    assert any(name.startswith("data/") for name in store.objects)
    out = tmp_path / "out"
    RestoreRun(cfg, open_store, out, ["images"], RestoreOptions(kdf=KDF, progress=False)).run()
    restored = next(out.rglob("a.jpg"))
    assert restored.read_bytes() == (pictures / "a.jpg").read_bytes()
    assert closed == ["closed", "closed"]


def test_a_file_store_is_backed_up_as_its_one_file(tmp_path: Path) -> None:
    """`[device] contacts = { type = "google-csv", path = ... }`: the export itself is the
    snapshot (a vdir's is every .vcf below its folder)."""
    export = tmp_path / "contacts.csv"
    export.write_bytes(b"First Name,Last Name\r\nAnn,Example\r\n")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[state]
dir = "{tmp_path / "state"}"

[device]
contacts = {{ type = "google-csv", path = "{export}" }}

[backup]
endpoint = "http://127.0.0.1:9"
bucket = "unused"
passphrase = "Corr3ct-Horse-battery"
""", encoding="utf-8")
    config.chmod(0o600)
    cfg = parse_backup(load_config(config))
    store = MemoryStore()

    def open_store() -> OpenedStore:
        return OpenedStore(store, lambda: None)

    stats = BackupRun(cfg, open_store, RunOptions(kdf=KDF, progress=False)).run().to_json()
    contacts = stats["categories"]["contacts"]
    assert contacts["error_files"] == [] and contacts["succeeded_files"] == 1
    out = tmp_path / "out"
    RestoreRun(cfg, open_store, out, ["contacts"], RestoreOptions(kdf=KDF, progress=False)).run()
    assert (out / "contacts" / "contacts.csv").read_bytes() == export.read_bytes()
