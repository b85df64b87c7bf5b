"""The sync engine over a real vdir and state store, with an in-memory DAV collection."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from davsync.core.item import parse_item
from davsync.dav.api import DavError
from davsync.sources import vdir
from davsync.sources.vdir import VdirSource
from tests.unit.rig import Rig, vcard


def test_two_way_add_edit_delete_and_noop_costs_one_request(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno"))
    report = rig.sync()
    assert (report.uploaded, report.downloaded, report.errors) == (1, 1, [])
    assert rig.device() == rig.server() == {"a": "Anna", "b": "Bruno"}

    rig.remote.requests = 0
    assert rig.sync().as_json()["errors"] == []
    assert rig.remote.requests == 1  # the probe only

    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna Maria"))
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno B."))
    report = rig.sync()
    assert (report.updated, report.downloaded) == (1, 1)
    assert rig.device() == rig.server() == {"a": "Anna Maria", "b": "Bruno B."}

    (rig.dir / "a.vcf").unlink()
    rig.remote.delete_raw("/u/c/b.vcf")
    report = rig.sync()
    assert (report.deleted_remote, report.deleted_local) == (1, 1)
    assert rig.device() == rig.server() == {}


def test_a_finished_run_leaves_no_file_set_aside_even_when_freeing_them_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaced and deleted device files are freed on a thread of its own while the run goes
    on; the run waits for that thread at its end, so the folder holds no temporary name once
    it returns (a slow disk here: each removal waits 0.3 s)."""
    import time

    import davsync.fsutil as fsutil

    real = fsutil._remove_all
    monkeypatch.setattr(fsutil, "_remove_all", lambda paths: (time.sleep(0.3), real(paths)))
    rig = Rig(tmp_path)
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Anna"))
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno"))
    rig.sync()
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Anna Maria"))
    rig.remote.delete_raw("/u/c/b.vcf")
    report = rig.sync()
    assert (report.downloaded, report.deleted_local) == (1, 1)
    assert sorted(os.listdir(rig.dir)) == ["a.vcf"]
    assert rig.device() == {"a": "Anna Maria"}


def test_first_upload_to_a_new_collection_is_one_bulk_request(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.remote.exists = False
    for i in range(30):
        (rig.dir / f"{i}.vcf").write_bytes(vcard(f"u{i}", f"Person {i}"))
    report = rig.sync()
    assert report.uploaded == 30
    assert rig.remote.requests <= 4  # bulk PUT, then probe + listing to settle
    assert len(rig.server()) == 30


def test_vcard_without_uid_gets_one_written_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "x.vcf").write_bytes(vcard(None, "No Uid"))
    rig.sync()
    uid = parse_item((rig.dir / "x.vcf").read_bytes(), "contacts").uid
    assert uid and rig.server() == {uid: "No Uid"}


def test_duplicate_uids_on_device_keep_both_contacts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "1.vcf").write_bytes(vcard("dup", "First"))
    (rig.dir / "2.vcf").write_bytes(vcard("dup", "Second"))
    (rig.dir / "3.vcf").write_bytes(vcard("dup", "First"))  # an exact copy: reported, untouched
    report = rig.sync()
    assert sorted(rig.server().values()) == ["First", "Second"]
    assert [e["item"].endswith("3.vcf") for e in report.errors] == [True]
    assert (rig.dir / "3.vcf").read_bytes() == vcard("dup", "First")


def test_unparseable_items_are_reported_and_never_deleted(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.sync()
    broken = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Anna"
    (rig.dir / "a.vcf").write_bytes(broken)
    rig.remote.put_raw("/u/c/bad.vcf", b"BEGIN:VCARD\r\nnonsense")
    report = rig.sync()
    reasons = {e["item"].rsplit("/", 1)[-1]: e["reason"] for e in report.errors}
    assert "never closed" in reasons["a.vcf"]
    assert "cannot parse server copy" in reasons["bad.vcf"]
    assert b"FN:Anna\r\n" in rig.remote.items["/u/c/a.vcf"][1]  # server copy untouched
    assert (rig.dir / "a.vcf").read_bytes() == broken
    assert "/u/c/bad.vcf" in rig.remote.items and "/u/c/a.vcf" in rig.remote.items
    again = rig.sync()  # still reported on the next run, still untouched
    assert {e["item"].rsplit("/", 1)[-1] for e in again.errors} == {"a.vcf", "bad.vcf"}


def test_conflict_keep_both_loses_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Base"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))
    report = rig.sync()
    assert report.conflicts == 1
    assert rig.device() == rig.server()
    assert sorted(rig.device().values()) == ["Device", "Server"]
    assert rig.device()["a"] == "Server"


def test_conflict_device_wins(tmp_path: Path) -> None:
    rig = Rig(tmp_path, conflict="device-wins")
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Base"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))
    rig.sync()
    assert rig.device() == rig.server() == {"a": "Device"}


def test_mass_deletion_stops_the_collection_unless_allowed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for i in range(12):
        (rig.dir / f"{i}.vcf").write_bytes(vcard(f"u{i}", f"P{i}"))
    rig.sync()
    for href in list(rig.remote.items):
        rig.remote.delete_raw(href)
    report = rig.sync()
    assert "--allow-mass-delete" in report.errors[0]["reason"]
    assert len(rig.device()) == 12
    assert rig.sync(allow_mass_delete=True).deleted_local == 12
    assert rig.device() == {}


def test_failed_upload_is_retried_next_run_without_duplicates(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.remote.fail_next_write = DavError("500 boom", 500)
    report = rig.sync()
    assert report.errors and rig.server() == {}
    rig.sync()
    assert rig.server() == {"a": "Anna"} and len(rig.remote.items) == 1


def test_412_on_update_becomes_a_conflict_not_an_overwrite(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Base"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    # the server changes between our listing and our PUT: simulate by editing after the probe
    original_probe = rig.remote.probe

    def probe_then_edit():  # type: ignore[no-untyped-def]
        probe = original_probe()
        if rig.server().get("a") == "Base":
            rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))
        return probe

    rig.remote.probe = probe_then_edit  # type: ignore[method-assign]
    report = rig.sync()
    rig.remote.probe = original_probe  # type: ignore[method-assign]
    assert report.conflicts == 1
    rig.sync()
    assert sorted(rig.server().values()) == ["Device", "Server"]
    assert rig.device() == rig.server()


def test_invalid_sync_token_falls_back_to_full_listing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.sync()
    rig.store.save_marks("c", None, "garbage")
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno"))
    assert rig.sync().downloaded == 1
    assert rig.device() == {"a": "Anna", "b": "Bruno"}


def test_server_without_sync_collection_uses_etag_listing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.remote.supports_sync_collection = lambda: False  # type: ignore[method-assign]
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno"))
    rig.sync()
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno B."))
    rig.remote.delete_raw("/u/c/a.vcf")
    report = rig.sync()
    assert (report.downloaded, report.deleted_local) == (1, 1)
    assert rig.device() == rig.server() == {"b": "Bruno B."}
    rig.remote.requests = 0
    rig.sync()
    assert rig.remote.requests == 1  # unchanged ctag: the probe only


def test_a_pairing_applies_downloads_while_later_ones_are_still_coming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing deleted anywhere, downloaded items are written chunk by chunk: memory stays
    at a chunk, not the collection. Seen from the server: when the last item is handed out,
    most of the earlier ones are already files on the device (named, or written and waiting
    for the batch's one sync before they get their names). The vdir writes every file itself
    here: from `_HELPER_FROM` files on, a batch's files are written by its flush."""
    monkeypatch.setattr(vdir, "_HELPER_FROM", 10**6)
    rig = Rig(tmp_path)
    for i in range(200):
        rig.remote.put_raw(f"/u/c/{i:03d}.vcf", vcard(f"u{i:03d}", f"Person {i}"))
    files_when_last_sent: list[int] = []
    plain = rig.remote.multiget

    def watched(hrefs: list[str]):  # type: ignore[no-untyped-def]
        for fetched in plain(hrefs):
            if fetched.href == hrefs[-1]:
                files_when_last_sent.append(len(list(rig.dir.glob("*.vcf")))
                                            + len(list(rig.dir.glob(".davsync-*.tmp"))))
            yield fetched

    rig.remote.multiget = watched  # type: ignore[method-assign]
    report = rig.sync()
    assert (report.downloaded, report.errors) == (200, [])
    assert files_when_last_sent and files_when_last_sent[0] >= 150
    assert len(rig.device()) == 200


def test_with_a_deletion_in_sight_the_whole_plan_comes_first(tmp_path: Path) -> None:
    """A deletion may trip the mass-deletion guard, which must stop the collection before
    anything is done: then everything is downloaded and planned before any file is written."""
    rig = Rig(tmp_path)
    for i in range(20):
        rig.remote.put_raw(f"/u/c/{i:03d}.vcf", vcard(f"u{i:03d}", f"Person {i}"))
    assert rig.sync().downloaded == 20
    for i in range(15):  # most of the server side goes away ...
        rig.remote.delete_raw(f"/u/c/{i:03d}.vcf")
    for i in range(20, 60):  # ... while new items arrive
        rig.remote.put_raw(f"/u/c/{i:03d}.vcf", vcard(f"u{i:03d}", f"Person {i}"))
    report = rig.sync()
    assert "stopped for safety" in report.errors[0]["reason"]
    assert report.downloaded == 0 and len(rig.device()) == 20  # nothing was applied


def test_items_gone_while_downloading_are_deleted_only_under_the_guard(tmp_path: Path) -> None:
    """Listed as changed, gone by the time the multiget asks (another client deleted them in
    between): planned last and still held by the mass-deletion guard, and the run that stops
    keeps its marks, so the next one sees the deletions again."""
    rig = Rig(tmp_path)
    for i in range(20):
        rig.remote.put_raw(f"/u/c/{i:03d}.vcf", vcard(f"u{i:03d}", f"Person {i}"))
    assert rig.sync().downloaded == 20
    for i in range(15):
        rig.remote.put_raw(f"/u/c/{i:03d}.vcf", vcard(f"u{i:03d}", f"Person {i} edited"))
    plain = rig.remote.multiget

    def racing(hrefs: list[str]):  # type: ignore[no-untyped-def]
        for i in range(15):
            if f"/u/c/{i:03d}.vcf" in rig.remote.items:
                rig.remote.delete_raw(f"/u/c/{i:03d}.vcf")
        yield from plain(hrefs)

    rig.remote.multiget = racing  # type: ignore[method-assign]
    report = rig.sync()
    assert "stopped for safety" in report.errors[0]["reason"]
    assert len(rig.device()) == 20
    rig.remote.multiget = plain  # type: ignore[method-assign]
    assert "stopped for safety" in rig.sync().errors[0]["reason"]  # seen again, still held
    report = rig.sync(allow_mass_delete=True)
    assert (report.deleted_local, report.errors) == (15, [])
    assert rig.device() == rig.server() and len(rig.device()) == 5


def test_a_conflict_names_the_item_and_where_both_versions_are(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Base"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))
    report = rig.sync()
    [conflict] = report.conflict_items
    assert conflict["item"] == f"{rig.dir}/a.vcf (Device)"
    copy = next(f.name for f in rig.dir.glob("*.vcf") if f.name != "a.vcf")
    copy_href = next(h for h in rig.remote.items if h != "/u/c/a.vcf")
    assert conflict["outcome"] == (
        f"changed on both sides; the server's version is in {rig.dir}/a.vcf (/u/c/a.vcf on the "
        f"server), this device's version is now a separate item in {rig.dir}/{copy} "
        f"({copy_href} on the server)"
    )
    assert report.as_json()["conflict_items"] == [conflict]


def test_server_wins_says_which_version_was_kept(tmp_path: Path) -> None:
    rig = Rig(tmp_path, conflict="server-wins")
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Base"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))
    [conflict] = rig.sync().conflict_items
    assert conflict["item"] == f"{rig.dir}/a.vcf (Device)"
    assert "kept the server's version" in conflict["outcome"]


def test_an_item_the_folder_refuses_is_an_item_error_not_the_end_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only device folder (simulated: the tests may run as root)."""
    rig = Rig(tmp_path)
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)  # the temporary file beside the item
    report = rig.sync()
    assert [e["reason"] for e in report.errors] == [
        f"{rig.dir}/b.vcf: cannot write: Permission denied"
    ]
    assert report.summary() == "1 error"
    monkeypatch.undo()
    assert rig.sync().downloaded == 1 and rig.device() == {"b": "Bruno"}


def test_skipped_entries_are_reported_once_per_run(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "x.vcf").mkdir()
    report = rig.sync()
    assert report.errors == [{"item": f"{rig.dir}/x.vcf",
                              "reason": "a folder, not a regular file: skipped"}]


def test_a_collection_with_errors_is_never_summarised_as_up_to_date() -> None:
    from davsync.report import CollectionReport

    report = CollectionReport()
    assert report.summary() == "up to date"
    report.error("a.vcf", "cannot parse")
    report.error("a.vcf", "cannot parse")  # the same failure seen twice is one error
    report.count("uploaded")
    assert report.summary() == "1 uploaded, 1 error"
    assert report.errors == [{"item": "a.vcf", "reason": "cannot parse"}]


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs (not even the engine's error handling)."""


def test_a_kill_while_keeping_both_never_loses_the_device_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device's version is written as its own copy before the server's version replaces
    it in the file: a kill at that moment finds the device version still in place."""
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))

    def killed(*args: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(VdirSource, "create", killed)
        with pytest.raises(Killed):
            rig.sync()
    assert "Device" in rig.device().values()
    rig.sync()
    assert rig.device() == rig.server()
    assert sorted(rig.device().values()) == ["Device", "Server"]


def test_a_kill_after_the_copy_was_made_makes_no_second_copy(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Device"))
    rig.remote.put_raw("/u/c/a.vcf", vcard("a", "Server"))
    rig.remote.fail_next_write = Killed()
    with pytest.raises(Killed):
        rig.sync()  # the copy is on the device, its upload never happened
    assert rig.sync().errors == []
    assert rig.device() == rig.server()
    assert sorted(rig.device().values()) == ["Device", "Server"]


def test_a_missing_device_folder_that_was_synced_stops_and_is_not_recreated(
    tmp_path: Path
) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.sync()
    shutil.rmtree(rig.dir)
    report = rig.sync()
    assert [e["item"] for e in report.errors] == [str(rig.dir)]
    assert "the device folder is missing" in report.errors[0]["reason"]
    assert not rig.dir.exists() and rig.server() == {"a": "Anna"}


def test_a_refused_item_is_not_sent_again_until_it_changes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.remote.fail_next_write = DavError("PUT /u/c/a.vcf on http://host: HTTP 400: bad date",
                                          400, "HTTP 400: bad date")
    report = rig.sync()
    assert report.errors[0]["item"] == f"{rig.dir}/a.vcf"  # the device file, with its folder
    assert report.errors[0]["reason"].startswith(  # the server's answer once, not the request
        "refused by the server (HTTP 400: bad date); not sent again until the file changes.")
    rig.remote.requests = 0
    again = rig.sync()
    assert again.errors[0]["item"] == report.errors[0]["item"]
    assert again.errors[0]["reason"] == "still " + report.errors[0]["reason"]
    assert rig.remote.requests == 1 and rig.server() == {}  # the probe; nothing sent
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna Maria"))
    assert rig.sync().errors == [] and rig.server() == {"a": "Anna Maria"}
    assert rig.store.refused("c") == {}


def test_an_item_over_the_size_limit_is_reported_and_kept(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_item_bytes=1000)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.sync()
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna " + "x" * 2000))
    report = rig.sync()
    assert "over the 0.0 MiB davsync sends for one item" in report.errors[0]["reason"]
    assert rig.server() == {"a": "Anna"} and (rig.dir / "a.vcf").exists()


def test_large_batches_written_by_the_helper_are_recorded_with_the_files_own_sigs(
    tmp_path: Path,
) -> None:
    """A pairing and a large server-side change whose files the vdir's helper process wrote:
    every record holds the sig of its file on disk (not the placeholder the write returned),
    so the next run reads no file and finds nothing to do."""
    rig = Rig(tmp_path)
    for i in range(1500):
        rig.remote.put_raw(f"/u/c/{i:04d}.vcf", vcard(f"u{i:04d}", f"Person {i}"))
    assert rig.sync().downloaded == 1500
    for i in range(0, 1500, 2):
        rig.remote.put_raw(f"/u/c/{i:04d}.vcf", vcard(f"u{i:04d}", f"Person {i} edited"))
    assert rig.sync().downloaded == 750
    scan = VdirSource(rig.dir, "contacts").scan()
    records = rig.store.items("c")
    assert len(records) == 1500
    assert {r.filename: r.device_sig for r in records.values()} == scan
    report = rig.sync()
    assert (report.downloaded, report.uploaded, report.errors) == (0, 0, [])
