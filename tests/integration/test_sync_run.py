"""A sync run as a long-lived process needs it: one run at a time per state directory (two
real processes), and many runs in one process over one client and one authenticator."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from davsync.app.sync import SyncService
from davsync.config import load_config
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device, copy_samples

# A second process that takes the sync lock of `argv[1]`, says so, and holds it until its
# stdin closes (or for `argv[2]` seconds).
_HOLDER = """
import sys, time
from pathlib import Path
from davsync.state.lock import state_lock
with state_lock(Path(sys.argv[1]), "sync"):
    print("held", flush=True)
    if sys.argv[2] == "stdin":
        sys.stdin.read()
    else:
        time.sleep(float(sys.argv[2]))
"""


@contextmanager
def _hold(state_dir: Path, how: str) -> Iterator[subprocess.Popen[str]]:
    """The other process, holding the lock; on leaving, its stdin is closed and it has ended."""
    with subprocess.Popen([sys.executable, "-c", _HOLDER, str(state_dir), how], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        try:
            yield holder
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=60)


def test_a_second_sync_on_the_same_state_dir_waits_then_names_the_other_process(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    state_dir = device.root / "state"
    with _hold(state_dir, "stdin") as holder:
        proc = device.run("sync", "--json")
    assert proc.returncode == 3, proc.stderr
    message = (f"another davsync sync (process {holder.pid}) is using the state directory "
               f"{state_dir}; try again when it has finished")
    assert json.loads(proc.stdout)["error"] == message
    assert not (state_dir / "state.sqlite").exists()  # it did nothing
    assert device.sync()["exit"] == 0  # once the other has finished, a run goes ahead
    human = device.run("sync")
    assert human.returncode == 0 and "Traceback" not in human.stderr


def test_a_sync_waits_for_a_run_that_is_finishing(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    with _hold(device.root / "state", "1"):
        got = device.sync()
    assert got["exit"] == 0 and "error" not in got
    assert got["collections"]["contacts"]["uploaded"] > 0


def test_runs_in_one_process_share_one_client_and_can_be_cancelled(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    copy_samples(device)
    service = SyncService(load_config(device.config))
    try:
        first = service.run()
        assert first.fatal is None and first.exit_code == 0
        client = service._client
        assert client is not None and first.collections["contacts"].uploaded > 0

        cancelled = threading.Event()
        cancelled.set()
        victim = sorted(device.contacts.glob("*.vcf"))[0]
        victim.write_text(victim.read_text(encoding="utf-8").replace(
            "END:VCARD", "NOTE:edited between runs\r\nEND:VCARD"), encoding="utf-8")
        stopped = service.run(cancel=cancelled)
        assert stopped.cancelled and stopped.as_json()["cancelled"] is True
        assert all(r.updated == 0 for r in stopped.collections.values())

        second = service.run()  # the same client (one pool, one authenticator) again
        assert service._client is client
        assert second.fatal is None and second.collections["contacts"].updated == 1
        third = service.run()
        assert third.exit_code == 0 and third.http_requests == 2  # one probe per collection
    finally:
        service.close()
    assert device.sync()["collections"]["contacts"]["updated"] == 0
