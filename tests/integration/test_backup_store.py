"""The BlobStore contract (davsync/backup/store.py), run by every adapter: S3 plain and SSE-C,
each also behind RetryingStore. Plus the runner's offline no-change path and unmetered wait."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator

import pytest

from davsync.app.backup import backup_run
from davsync.backup.run import run_lock
from davsync.backup.s3 import S3Store, make_client
from davsync.backup.store import AccessDenied, BlobStore, NotFound, RetryingStore
from davsync.devtools.seaweed_local import MAX_VOLUMES
from davsync.errors import DavsyncError
from davsync.secret import Secret
from tests.fixtures.seaweed import BackupEnv, CountingStore, S3Bucket, make_file, run_opts

MiB = 1 << 20


@pytest.fixture(params=["plain", "sse-c", "retrying-sse-c"])
def store(request: pytest.FixtureRequest, s3_bucket: S3Bucket) -> Iterator[BlobStore]:
    server = s3_bucket.server
    client = make_client(server.endpoint, "us-east-1",
                         (server.access_key, Secret(server.secret_key)))
    raw = S3Store(client, s3_bucket.name, "contract")
    raw.ensure_bucket()
    out: BlobStore = raw
    if request.param != "plain":
        out = raw.with_sse_c(os.urandom(32))
    if request.param.startswith("retrying"):
        out = RetryingStore(out)
    yield out
    client.close()


def test_put_get_stream_head_delete(store: BlobStore) -> None:
    data = os.urandom(3 * MiB + 7)
    store.put("data/abc", data)
    assert store.get("data/abc") == data
    assert b"".join(store.stream("data/abc", MiB)) == data
    assert store.head("data/abc") == len(data)
    store.delete("data/abc")
    assert store.head("data/abc") is None
    with pytest.raises(NotFound):
        store.get("data/abc")
    store.delete("data/abc")     # deleting a missing object is not an error


def test_multipart_list_resume_complete_abort(store: BlobStore) -> None:
    one, two, three = os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(100)
    upload = store.create_multipart("data/mp")
    p1 = store.upload_part("data/mp", upload, 1, one)
    p3 = store.upload_part("data/mp", upload, 3, three)
    listed = {p.number: p.size for p in store.list_parts("data/mp", upload)}
    assert listed == {1: 5 * MiB, 3: 100}
    assert store.head("data/mp") is None                     # not visible before completion
    assert ("data/mp", upload) in store.list_multipart_uploads()
    p2 = store.upload_part("data/mp", upload, 2, two)
    store.complete_multipart("data/mp", upload, [p3, p1, p2])
    assert store.get("data/mp") == one + two + three
    with pytest.raises(NotFound):
        store.list_parts("data/mp", upload)
    gone = store.create_multipart("data/gone")
    store.abort_multipart("data/gone", gone)
    assert ("data/gone", gone) not in store.list_multipart_uploads()


def test_errors_name_the_store_and_never_the_key(s3_bucket: S3Bucket) -> None:
    server = s3_bucket.server
    client = make_client(server.endpoint, "us-east-1", (server.access_key, Secret("wrong")))
    try:
        store = S3Store(client, s3_bucket.name, "p")
        with pytest.raises(AccessDenied) as err:
            store.put("x", b"1")
        assert s3_bucket.name in str(err.value) and "wrong" not in str(err.value)
    finally:
        client.close()


def test_no_change_run_sends_no_request_at_all(backup_env: BackupEnv) -> None:
    make_file(backup_env.media / "Pictures" / "p.jpg", 100)
    backup_run(backup_env.backup_config(), run_opts()).run()
    counting = CountingStore()
    stats = backup_run(backup_env.backup_config(), run_opts(counting)).run().to_json()
    assert not hasattr(counting, "inner")                    # the bucket was never opened
    assert stats["status"] == "COMPLETED" and stats["succeeded_files"] == 1


def test_unmetered_only_waits_while_metered_before_and_during_the_run(
        backup_env: BackupEnv) -> None:
    backup_env.write_config(extra="unmetered_only = true")
    make_file(backup_env.media / "Pictures" / "p.jpg", 100)
    make_file(backup_env.media / "Videos" / "v.mp4", 600_000)
    answers = [True, True, False, True, False, False, False]
    asked: list[bool] = []

    def metered() -> bool:
        asked.append(answers.pop(0))
        return asked[-1]

    stats = backup_run(backup_env.backup_config(), run_opts(
        metered=metered, metered_wait=0.0)).run().to_json()
    assert stats["succeeded_files"] == 2
    assert asked[:3] == [True, True, False] and len(asked) >= 4   # asked again per file


def test_a_second_backup_at_the_same_time_is_refused(backup_env: BackupEnv) -> None:
    cfg = backup_env.backup_config()
    with run_lock(cfg.state_dir), pytest.raises(DavsyncError) as refused:
        backup_run(cfg, run_opts()).run()
    # the holder is named, and it is a "try again later" (exit 3), like a busy sync
    assert f"another backup is running (process {os.getpid()}, lock " in str(refused.value)
    assert refused.value.exit_code == 3
    with run_lock(cfg.state_dir):   # released again
        pass


def test_the_test_server_has_room_for_every_bucket_of_a_session(s3_bucket: S3Bucket) -> None:
    """Each bucket takes a SeaweedFS volume; the volume limit must not follow the free disk
    space (about one per free GB), or a session on a fuller disk fails at its 50th bucket."""
    server = s3_bucket.server
    with urllib.request.urlopen(f"http://127.0.0.1:{server.master_port}/dir/status",
                                timeout=10) as answer:
        topology = json.load(answer)["Topology"]
    assert topology["Max"] == MAX_VOLUMES >= 1000
