"""Backup and restore against a real SeaweedFS, in both encryption modes."""

from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from davsync.app.backup import backup_run, restore_run
from davsync.cli import main
from davsync.cli.backup import backup_status
from davsync.config import load_config
from tests.fixtures.seaweed import (
    PASSPHRASE,
    BackupEnv,
    CountingStore,
    make_file,
    restore_opts,
    run_opts,
    tree,
)

MODES = ["client", "sse-c"]
VCARDS = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Ann\r\nEND:VCARD\r\n"
          "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob\r\nEND:VCARD\r\n")
ICS = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nSUMMARY:x\r\nEND:VEVENT\r\n"
       "BEGIN:VTODO\r\nUID:t1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")


def populate(env: BackupEnv) -> None:
    make_file(env.media / "Pictures" / "2024" / "a.jpg", 100_000, 1_600_000_000_123_456_789)
    make_file(env.media / "Pictures" / "b.png", 3, 1_500_000_000_000_000_000)
    make_file(env.media / "Pictures" / "empty.raw", 0)
    make_file(env.media / "Videos" / "clip.mp4", 12 << 20)  # multipart with 5 MiB parts
    make_file(env.media / "Documents" / "notes" / "ü nïcode & space.txt", 1234)
    (env.contacts / "book").mkdir()
    (env.contacts / "book" / "all.vcf").write_bytes(VCARDS.encode())
    (env.calendars / "cal").mkdir()
    (env.calendars / "cal" / "e1.ics").write_bytes(ICS.encode())


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_is_byte_identical_and_second_run_sends_nothing(
        backup_env: BackupEnv, mode: str) -> None:
    backup_env.write_config(mode, extra="part_size_mib = 5")
    populate(backup_env)
    cfg = backup_env.backup_config()
    first = CountingStore()
    stats = backup_run(cfg, run_opts(first)).run().to_json()
    assert stats["failed_files"] == 0
    assert stats["succeeded_files"] == 5 + 2
    assert len(first.data_puts) == 1 and len(first.parts) == 3  # one pack; 12 MiB = 5 + 5 + 2

    second = CountingStore()
    stats2 = backup_run(cfg, run_opts(second)).run().to_json()
    assert second.data_puts == [] and second.parts == []
    assert stats2["bytes_processed"] == 0 and stats2["succeeded_files"] == 7

    out = backup_env.root / "restored"
    rstats = restore_run(cfg, out, opts=restore_opts()).run().to_json()
    assert rstats["failed_files"] == 0
    media = backup_env.media
    assert tree(out / "images") == {f"Pictures/{k}": v for k, v in tree(media / "Pictures").items()}
    assert tree(out / "videos") == {f"Videos/{k}": v for k, v in tree(media / "Videos").items()}
    assert tree(out / "documents") == {
        f"Documents/{k}": v for k, v in tree(media / "Documents").items()}
    assert (out / "contacts" / "book" / "all.vcf").read_bytes() == VCARDS.encode()
    assert (out / "calendars" / "cal" / "e1.ics").read_bytes() == ICS.encode()
    contacts = rstats["categories"]["contacts"]
    assert (contacts["total_contacts"], contacts["succeeded_contacts"]) == (2, 2)
    assert rstats["categories"]["calendars"]["succeeded_events"] == 2


def test_object_names_reveal_nothing_and_status_reports_both_runs(backup_env: BackupEnv) -> None:
    populate(backup_env)
    cfg = backup_env.backup_config()
    backup_run(cfg, run_opts()).run()
    client = backup_env.bucket.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=backup_env.bucket.name)["Contents"]]
    assert "laptop/keyinfo" in keys and "laptop/manifest" in keys
    # Every name is a fixed word or 40 hex digits, so none can carry a file name. (Looking for
    # words such as "2024" in the keys instead failed by chance: random hex contains "2024" in
    # about one name of 1 700.)
    for key in keys:
        assert re.fullmatch(r"laptop/(keyinfo|manifest|(data|snapshots)/[0-9a-f]{40})", key), key
    body = client.get_object(Bucket=backup_env.bucket.name, Key="laptop/manifest")["Body"].read()
    assert b"a.jpg" not in body and body.startswith(b"DAVSYNC\x01")

    restore_run(cfg, backup_env.root / "out", ["images"], restore_opts()).run()
    status = backup_status(load_config(backup_env.config_path))
    backup, restore = status["backup"], status["restore"]
    assert backup["status"] == "COMPLETED" and backup["total_files"] == 7
    assert set(backup["categories"]) == {"images", "videos", "documents", "contacts", "calendars"}
    images = restore["categories"]["images"]
    assert images["status"] == "COMPLETED" and images["succeeded_files"] == 3
    assert restore["categories"]["videos"]["status"] == "YET_TO_START"
    for field in ("status", "last_modified", "total_files", "succeeded_files", "failed_files",
                  "bytes_processed", "error_files"):
        assert field in backup["categories"]["videos"]
    assert backup["categories"]["calendars"]["total_events"] == 2
    stats_file = backup_env.state / "backup-stats.json"
    assert json.loads(stats_file.read_text())["backup"]["succeeded_files"] == 7
    assert PASSPHRASE not in stats_file.read_text()


def test_touched_file_is_hashed_not_sent_and_changed_file_is_sent(backup_env: BackupEnv) -> None:
    photo = make_file(backup_env.media / "Pictures" / "p.jpg", 50_000)
    doc = make_file(backup_env.media / "Documents" / "d.txt", 10)
    cfg = backup_env.backup_config()
    backup_run(cfg, run_opts()).run()
    os.utime(photo, ns=(1, 2_000_000_000_000_000_000))   # touched: same bytes, new mtime
    doc.write_bytes(b"0123456789")                         # same size, new content
    counting = CountingStore()
    stats = backup_run(cfg, run_opts(counting)).run().to_json()
    assert stats["failed_files"] == 0
    assert len(counting.data_puts) == 1                    # only the changed document
    out = backup_env.root / "out"
    restore_run(cfg, out, opts=restore_opts()).run()
    assert (out / "documents" / "Documents" / "d.txt").read_bytes() == b"0123456789"
    assert (out / "images" / "Pictures" / "p.jpg").stat().st_mtime_ns == 2_000_000_000_000_000_000


def test_deleted_file_stays_until_retention_has_passed(backup_env: BackupEnv) -> None:
    gone = make_file(backup_env.media / "Pictures" / "gone.jpg", 600_000)   # too big to pack
    make_file(backup_env.media / "Pictures" / "kept.jpg", 600_000)
    cfg = backup_env.backup_config()
    day = 86400.0
    backup_run(cfg, run_opts(now=lambda: 1_000_000.0)).run()
    gone.unlink()
    backup_run(cfg, run_opts(now=lambda: 1_000_000.0 + day)).run()
    client = backup_env.bucket.client()

    def data_objects() -> int:
        resp = client.list_objects_v2(Bucket=backup_env.bucket.name, Prefix="laptop/data/")
        return int(resp.get("KeyCount", 0))

    assert data_objects() == 2                             # marked deleted, not removed
    backup_run(cfg, run_opts(now=lambda: 1_000_000.0 + 29 * day)).run()
    assert data_objects() == 2
    backup_run(cfg, run_opts(now=lambda: 1_000_000.0 + 32 * day)).run()
    assert data_objects() == 1                             # 30 days after it was seen gone
    out = backup_env.root / "out"
    restore_run(cfg, out, opts=restore_opts()).run()
    assert sorted(p.name for p in (out / "images" / "Pictures").iterdir()) == ["kept.jpg"]


@pytest.mark.parametrize("mode", MODES)
def test_new_machine_restores_and_continues_with_only_passphrase_and_bucket(
        backup_env: BackupEnv, mode: str) -> None:
    backup_env.write_config(mode)
    make_file(backup_env.media / "Pictures" / "p.jpg", 5000)
    backup_run(backup_env.backup_config(), run_opts()).run()
    # "New machine": a fresh state dir (no index), same bucket and passphrase.
    backup_env.state = backup_env.root / "state2"
    backup_env.write_config(mode)
    cfg = backup_env.backup_config()
    out = backup_env.root / "out"
    stats = restore_run(cfg, out, opts=restore_opts()).run().to_json()
    assert stats["succeeded_files"] == 1
    assert (out / "images" / "Pictures" / "p.jpg").read_bytes() == (
        backup_env.media / "Pictures" / "p.jpg").read_bytes()
    counting = CountingStore()
    backup_run(cfg, run_opts(counting)).run()
    assert counting.data_puts == []                        # index rebuilt from the manifest


def test_cli_backup_restore_and_exit_codes(backup_env: BackupEnv) -> None:
    make_file(backup_env.media / "Documents" / "d.txt", 100)
    backup_run(backup_env.backup_config(), run_opts()).run()   # repository with a fast KDF
    runner = CliRunner()
    args = ["--config", str(backup_env.config_path)]
    result = runner.invoke(main, [*args, "backup", "-q"])
    assert result.exit_code == 0, result.output
    out = backup_env.root / "out"
    result = runner.invoke(main, [*args, "restore", "--to", str(out), "--category", "documents"])
    assert result.exit_code == 0, result.output
    assert (out / "documents" / "Documents" / "d.txt").stat().st_size == 100
    assert not (out / "images").exists()
    assert PASSPHRASE not in result.output


def test_a_config_with_only_backup_serves_backup_restore_and_status(
    backup_env: BackupEnv,
) -> None:
    make_file(backup_env.media / "Documents" / "d.txt", 100)
    text = backup_env.config_path.read_text()
    backup_env.config_path.write_text(text.split("[device]")[0].replace(
        '[server]\nurl = "http://127.0.0.1:9/"\nusername = "nobody"\n', "")
        + "[state]" + text.split("[state]")[1])
    assert "[server]" not in backup_env.config_path.read_text()
    backup_run(backup_env.backup_config(), run_opts()).run()   # repository with a fast KDF
    runner = CliRunner()
    args = ["--config", str(backup_env.config_path)]
    for command in (["backup", "-q"], ["restore", "-q", "--to", str(backup_env.root / "out")],
                    ["status"]):
        result = runner.invoke(main, [*args, *command])
        assert result.exit_code == 0, result.output
    assert (backup_env.root / "out" / "documents" / "Documents" / "d.txt").stat().st_size == 100
    result = runner.invoke(main, [*args, "sync"])
    assert result.exit_code == 2
    assert "no [server] section" in result.output
