"""What goes wrong, for real: passphrases, damaged objects, SSE-C keys, interrupted uploads,
hostile names on restore."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from davsync.app.backup import backup_run, open_backup_repository, restore_run
from davsync.backup.manifest import Manifest
from davsync.backup.mirror import read_manifest
from davsync.backup.model import Record
from davsync.backup.repo import MANIFEST
from davsync.cli import main
from davsync.errors import EXIT_ITEMS_FAILED, EXIT_UNREACHABLE, EXIT_WRONG_PASSPHRASE
from tests.fixtures.ports import free_port
from tests.fixtures.seaweed import (
    KDF,
    PASSPHRASE,
    BackupEnv,
    CountingStore,
    make_file,
    restore_opts,
    run_opts,
    tree,
)

MODES = ["client", "sse-c"]


def cli(env: BackupEnv, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(env.config_path), *args])
    return result.exit_code, result.output


def data_key(env: BackupEnv, name: str) -> str:
    cfg = env.backup_config()
    repo = open_backup_repository(cfg, create=False, kdf=KDF)
    try:
        manifest = read_manifest(repo)
        assert manifest is not None
        return next(f"laptop/{r.object}" for r in manifest.files if r.name.endswith(name))
    finally:
        repo.close()


@pytest.mark.parametrize("mode", MODES)
def test_wrong_passphrase_exit_4_before_any_data_is_touched(backup_env: BackupEnv,
                                                            mode: str) -> None:
    backup_env.write_config(mode)
    make_file(backup_env.media / "Pictures" / "p.jpg", 100)
    backup_run(backup_env.backup_config(), run_opts()).run()
    make_file(backup_env.media / "Pictures" / "new.jpg", 100)
    wrong = "Wr0ng-passphrase"
    backup_env.write_config(mode, passphrase=wrong)
    for args in (["backup", "-q"], ["restore", "--to", str(backup_env.root / "out")]):
        code, output = cli(backup_env, *args)
        assert code == EXIT_WRONG_PASSPHRASE, output
        assert "wrong backup passphrase" in output
        assert wrong not in output
    assert not (backup_env.root / "out").exists()
    listing = backup_env.bucket.client().list_objects_v2(Bucket=backup_env.bucket.name)
    assert sum(1 for o in listing["Contents"] if "/data/" in o["Key"]) == 1   # nothing new sent


def test_passphrase_policy_is_checked_first_and_names_what_is_missing(
        backup_env: BackupEnv) -> None:
    backup_env.write_config(passphrase="alllowercase", endpoint=f"http://127.0.0.1:{free_port()}")
    code, output = cli(backup_env, "backup")
    assert code == 2
    assert "a digit" in output and "a special character" in output
    assert "an upper-case letter" in output and "alllowercase" not in output


def test_unreachable_server_is_cannot_verify_exit_3(backup_env: BackupEnv) -> None:
    backup_env.write_config(endpoint=f"http://127.0.0.1:{free_port()}",
                            extra="")
    code, output = cli(backup_env, "restore", "--to", str(backup_env.root / "out"))
    assert code == EXIT_UNREACHABLE, output
    assert "cannot verify the passphrase" in output
    assert PASSPHRASE not in output


def test_sse_c_is_enforced_and_key_command_prints_the_working_key(backup_env: BackupEnv) -> None:
    backup_env.write_config("sse-c")
    photo = make_file(backup_env.media / "Pictures" / "p.jpg", 2000)
    backup_run(backup_env.backup_config(), run_opts()).run()
    key = data_key(backup_env, "p.jpg")
    s3 = backup_env.bucket.client()
    bucket = backup_env.bucket.name
    with pytest.raises(ClientError) as no_key:
        s3.get_object(Bucket=bucket, Key=key)
    assert no_key.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as wrong_key:
        s3.get_object(Bucket=bucket, Key=key, SSECustomerAlgorithm="AES256",
                      SSECustomerKey=os.urandom(32))
    assert wrong_key.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    code, output = cli(backup_env, "backup", "key", "--sse-c")
    assert code == 0, output
    printed = base64.b64decode(output.strip().splitlines()[-1])
    body = s3.get_object(Bucket=bucket, Key=key, SSECustomerAlgorithm="AES256",
                         SSECustomerKey=printed)["Body"].read()
    assert body == photo.read_bytes()


def test_sse_c_over_plain_http_is_refused_unless_loopback(backup_env: BackupEnv) -> None:
    backup_env.write_config("sse-c", endpoint="http://s3.example.org")
    code, output = cli(backup_env, "backup")
    assert code == 2 and "https://" in output


def _damage(env: BackupEnv, mode: str, name: str, how: str) -> None:
    s3 = env.bucket.client()
    key = data_key(env, name)
    sse = {}
    if mode == "sse-c":
        repo = open_backup_repository(env.backup_config(), create=False, kdf=KDF)
        repo.close()
        sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": repo.keys.sse_c}
    blob = bytearray(s3.get_object(Bucket=env.bucket.name, Key=key, **sse)["Body"].read())
    if how == "tamper":
        blob[len(blob) // 2] ^= 0x01
    else:
        del blob[len(blob) - 1000:]
    s3.put_object(Bucket=env.bucket.name, Key=key, Body=bytes(blob), **sse)


@pytest.mark.parametrize("how", ["tamper", "truncate"])
@pytest.mark.parametrize("mode", MODES)
def test_damaged_object_is_named_and_the_rest_is_restored(backup_env: BackupEnv, mode: str,
                                                          how: str) -> None:
    backup_env.write_config(mode)
    make_file(backup_env.media / "Pictures" / "bad.jpg", 3 << 20)
    make_file(backup_env.media / "Pictures" / "good.jpg", 5000)
    make_file(backup_env.media / "Documents" / "good.txt", 10)
    backup_run(backup_env.backup_config(), run_opts()).run()
    _damage(backup_env, mode, "bad.jpg", how)
    out = backup_env.root / "out"
    code, output = cli(backup_env, "restore", "-q", "--to", str(out))
    assert code == EXIT_ITEMS_FAILED
    assert "Pictures/bad.jpg" in output and ("tampered" in output or "truncated" in output)
    assert not (out / "images" / "Pictures" / "bad.jpg").exists()
    assert [p.name for p in (out / "images" / "Pictures").iterdir()] == ["good.jpg"]
    assert (out / "documents" / "Documents" / "good.txt").exists()


@pytest.mark.parametrize("mode", MODES)
def test_interrupted_multipart_upload_resumes_without_resending_parts(
        backup_env: BackupEnv, mode: str) -> None:
    backup_env.write_config(mode, extra="part_size_mib = 5")
    video = make_file(backup_env.media / "Videos" / "long.mp4", 26 << 20)   # 6 parts
    cfg = backup_env.backup_config()
    broken = CountingStore(fail_after_parts=3)
    stats = backup_run(cfg, run_opts(broken)).run().to_json()
    assert stats["failed_files"] == 1 and "injected" in str(stats["categories"]["videos"])
    sent_first = {n for _, n in broken.parts}
    assert len(sent_first) == 3

    resumed = CountingStore()
    stats = backup_run(cfg, run_opts(resumed)).run().to_json()
    assert stats["failed_files"] == 0
    sent_second = {n for _, n in resumed.parts}
    assert sent_second == set(range(1, 7)) - sent_first          # nothing sent twice
    out = backup_env.root / "out"
    restore_run(cfg, out, ["videos"], restore_opts()).run()
    restored = out / "videos" / "Videos" / "long.mp4"
    assert hashlib.sha256(restored.read_bytes()).digest() == hashlib.sha256(
        video.read_bytes()).digest()
    uploads = backup_env.bucket.client().list_multipart_uploads(Bucket=backup_env.bucket.name)
    assert not uploads.get("Uploads")


@pytest.mark.parametrize("mode", MODES)
def test_hostile_names_are_refused_and_the_rest_restored(backup_env: BackupEnv,
                                                          mode: str) -> None:
    backup_env.write_config(mode)
    make_file(backup_env.media / "Documents" / "ok.txt", 10)
    make_file(backup_env.media / "Documents" / "sub" / "via-link.txt", 10)
    cfg = backup_env.backup_config()
    backup_run(cfg, run_opts()).run()
    repo = open_backup_repository(cfg, create=False, kdf=KDF)
    try:
        manifest = read_manifest(repo)
        assert manifest is not None
        good = manifest.files[0]
        evil = [Record(good.category, name, "", good.size, good.mtime_ns, None, good.sha256,
                       good.object, good.stored_size, 0.0)
                for name in ("../../escaped.txt", "/tmp/absolute.txt", "a/../../up.txt")]
        repo.store.put(MANIFEST, repo.seal(Manifest(manifest.files + evil).to_bytes()))
    finally:
        repo.close()
    out = backup_env.root / "out"
    outside = backup_env.root / "outside"
    outside.mkdir()
    (out / "documents" / "Documents").mkdir(parents=True)
    (out / "documents" / "Documents" / "sub").symlink_to(outside)
    code, output = cli(backup_env, "restore", "-q", "--to", str(out))
    assert code == EXIT_ITEMS_FAILED
    for name in ("../../escaped.txt", "/tmp/absolute.txt", "a/../../up.txt", "sub/via-link.txt"):
        assert name in output
    assert "refused" in output
    assert list(outside.iterdir()) == []
    assert not (backup_env.root / "escaped.txt").exists()
    assert not os.path.exists("/tmp/absolute.txt")
    assert set(tree(out / "documents")) == {"Documents/ok.txt"}


class Crash(BaseException):
    """Stands in for kill -9 right after a pack reached the server, before it was recorded."""


class CrashAfterPut(CountingStore):
    def put(self, name: str, data: bytes | bytearray) -> None:
        super().put(name, data)
        if name.startswith("data/"):
            raise Crash


@pytest.mark.parametrize("mode", MODES)
def test_pack_stored_but_not_recorded_is_not_sent_again(backup_env: BackupEnv,
                                                        mode: str) -> None:
    backup_env.write_config(mode)
    photos = [make_file(backup_env.media / "Pictures" / f"p{i}.jpg", 10_000) for i in range(5)]
    cfg = backup_env.backup_config()
    with pytest.raises(Crash):
        backup_run(cfg, run_opts(CrashAfterPut())).run()
    photos[0].write_bytes(b"changed meanwhile")           # this member must not be trusted
    counting = CountingStore()
    stats = backup_run(cfg, run_opts(counting)).run().to_json()
    assert stats["failed_files"] == 0 and stats["succeeded_files"] == 5
    assert len(counting.data_puts) == 1                     # only the changed photo, in a pack
    out = backup_env.root / "out"
    restore_run(cfg, out, ["images"], restore_opts()).run()
    assert tree(out / "images") == {f"Pictures/{k}": v
                                    for k, v in tree(backup_env.media / "Pictures").items()}


def test_very_verbose_sse_c_run_logs_no_key_and_no_secret(backup_env: BackupEnv) -> None:
    backup_env.write_config("sse-c")
    make_file(backup_env.media / "Pictures" / "p.jpg", 600_000)
    backup_run(backup_env.backup_config(), run_opts()).run()          # fast-KDF repository
    make_file(backup_env.media / "Videos" / "v.mp4", 6 << 20)         # something to send
    repo = open_backup_repository(backup_env.backup_config(), create=False, kdf=KDF)
    repo.close()
    davsync = str(Path(sys.executable).parent / "davsync")
    proc = subprocess.run([davsync, "-vv", "--config", str(backup_env.config_path), "backup",
                           "-q"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "DEBUG" in text                                    # -vv really logged
    assert base64.b64encode(repo.keys.sse_c).decode() not in text
    assert PASSPHRASE not in text and backup_env.bucket.server.secret_key not in text
