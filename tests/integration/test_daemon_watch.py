"""How `davsync run` notices device changes, against a real Radicale: a burst of edits is one
sync, and a device store that cannot be watched is scanned instead. Waits poll with bounded
deadlines; nothing asserts speed."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from davsync.app import watch as watch_module
from davsync.app.daemon import Daemon
from davsync.app.notify import Notifier
from davsync.app.watch import DeviceWatcher
from davsync.config import load_config
from tests.fixtures.radicale import DavAccount
from tests.integration.test_daemon import _configure, _poll, _stop, _vcard, daemon
from tests.integration.test_sync_radicale import Device, server_items

# Only the first run and the runs a device change asks for: no periodic run in a test.
QUIET = "[daemon]\nsync_interval = 3600\njitter = 0\n"
BURST = 20


def _sync_runs(device: Device) -> int:
    status = json.loads((device.root / "state" / "daemon.json").read_text(encoding="utf-8"))
    runs: int = status["sync_runs"]
    return runs


def test_a_burst_of_device_edits_is_one_sync(tmp_path: Path, dav_account: DavAccount) -> None:
    device = Device(tmp_path / "d", dav_account)
    _configure(device, QUIET)
    with daemon(device, tmp_path) as (proc, notes):
        notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
        assert _sync_runs(device) == 1
        # The daemon is stopped while the burst is written: its watcher then finds every
        # change at once however slow this machine is, as it would a burst faster than the
        # debounce.
        proc.send_signal(signal.SIGSTOP)
        try:
            for n in range(BURST):
                (device.contacts / f"c{n}.vcf").write_text(_vcard(f"c-{n}", f"C {n}"),
                                                           encoding="utf-8")
        finally:
            proc.send_signal(signal.SIGCONT)
        _poll(lambda: len(server_items(dav_account, "contacts")) == BURST)
        notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
        _stop(proc, notes)
    assert _sync_runs(device) == 2


@pytest.fixture
def keep_signals() -> Iterator[None]:
    """The daemon run in this process installs its handlers: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                     signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _unwatchable(folders: list[Path], stop: threading.Event) -> Iterator[object]:
    raise OSError(28, "inotify watch limit reached (simulated)")


def test_a_store_that_cannot_be_watched_is_scanned_and_its_change_synced(
    tmp_path: Path, dav_account: DavAccount, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, keep_signals: None
) -> None:
    monkeypatch.setattr(DeviceWatcher, "watch_changes", staticmethod(_unwatchable))
    monkeypatch.setattr(watch_module, "SCAN_FALLBACK", 0.2)
    device = Device(tmp_path / "d", dav_account)
    _configure(device, QUIET)
    running = Daemon(load_config(device.config), Notifier(None))
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            _poll(lambda: running.sync_runs >= 1)
            # Written beside the folder and moved in: a scan never sees it half-written
            # (which would be a second change, and a second sync).
            staged = tmp_path / "ada.vcf"
            staged.write_text(_vcard("ada-1", "Ada"), encoding="utf-8")
            staged.replace(device.contacts / "ada.vcf")
            _poll(lambda: "ada-1" in server_items(dav_account, "contacts"))
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)
        finally:
            running.stop()

    driver = threading.Thread(target=drive)
    driver.start()
    with caplog.at_level(logging.WARNING, logger="davsync.app.watch"):
        assert running.run() == 0
    driver.join()
    assert not failures, failures
    assert running.sync_runs == 2  # the first run, and the one the scan asked for
    assert "looking for device changes every 0.2 s instead" in caplog.text
