"""A run a long-lived process can stop: cancelled between items, it finishes the item in
flight, keeps the marks where they were, and the next run completes the work."""

from __future__ import annotations

import threading
from pathlib import Path

from davsync.sources.vdir import VdirSource
from tests.unit.memdav import MemCollection
from tests.unit.rig import Rig, vcard


class CancelOnCreate(MemCollection):
    """Sets `cancel` while its `after`-th PUT is in flight (as a daemon's stop request would)."""

    def __init__(self, cancel: threading.Event, after: int) -> None:
        super().__init__()
        self.cancel, self.after, self.creates = cancel, after, 0

    def create(self, href: str, data: bytes) -> str | None:
        self.creates += 1
        if self.creates == self.after:
            self.cancel.set()
        return super().create(href, data)


class CancelOnFileCreate(VdirSource):
    def __init__(self, folder: Path, cancel: threading.Event, after: int) -> None:
        super().__init__(folder, "contacts")
        self.cancel, self.after, self.creates = cancel, after, 0

    def create(self, uid: str, data: bytes) -> tuple[str, str]:
        self.creates += 1
        if self.creates == self.after:
            self.cancel.set()
        return super().create(uid, data)


def test_a_cancelled_upload_stops_after_the_item_in_flight_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    cancel = threading.Event()
    rig = Rig(tmp_path, concurrency=1)
    rig.remote = CancelOnCreate(cancel, after=3)
    for i in range(20):
        (rig.dir / f"{i}.vcf").write_bytes(vcard(f"u{i}", f"Person {i}"))

    report = rig.sync(cancel=cancel)
    assert (report.uploaded, report.errors) == (3, [])  # the third PUT was in flight: finished
    assert len(rig.server()) == 3
    assert len(rig.store.items("c")) == 3  # what was done is recorded
    marks = rig.store.collection("c")
    assert marks is not None and (marks.ctag, marks.sync_token) == (None, None)  # not advanced

    report = rig.sync()  # the next run (not cancelled) completes the work, duplicating nothing
    assert (report.uploaded, report.errors) == (17, [])
    assert rig.device() == rig.server() and len(rig.server()) == 20
    rig.remote.requests = 0
    assert rig.sync().as_json()["errors"] == [] and rig.remote.requests == 1


def test_a_cancelled_download_keeps_the_marks_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    cancel = threading.Event()
    rig = Rig(tmp_path)
    for i in range(120):  # more than one streamed chunk
        rig.remote.put_raw(f"/u/c/{i}.vcf", vcard(f"s{i}", f"Server {i}"))

    report = rig.sync(CancelOnFileCreate(rig.dir, cancel, after=5), cancel=cancel)
    assert (report.downloaded, report.errors) == (5, [])
    assert len(rig.device()) == 5 and len(rig.store.items("c")) == 5
    marks = rig.store.collection("c")
    assert marks is not None and marks.sync_token is None  # the listing is read again

    report = rig.sync()
    assert (report.downloaded, report.errors) == (115, [])
    assert rig.device() == rig.server() and len(rig.device()) == 120
    rig.remote.requests = 0
    assert rig.sync().as_json()["errors"] == [] and rig.remote.requests == 1


def test_a_run_cancelled_before_it_starts_changes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.dir / "a.vcf").write_bytes(vcard("a", "Anna"))
    rig.remote.put_raw("/u/c/b.vcf", vcard("b", "Bruno"))
    cancel = threading.Event()
    cancel.set()
    report = rig.sync(cancel=cancel)
    assert (report.uploaded, report.downloaded, report.errors) == (0, 0, [])
    assert rig.device() == {"a": "Anna"} and rig.server() == {"b": "Bruno"}
    assert rig.sync().as_json()["errors"] == []
    assert rig.device() == rig.server() == {"a": "Anna", "b": "Bruno"}
