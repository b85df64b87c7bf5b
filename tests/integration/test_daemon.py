"""`davsync run` as a real subprocess against a real Radicale, notifying a datagram socket the
test listens on as systemd would. Waits poll with bounded deadlines; nothing asserts speed."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

from davsync.devtools.net import wait_listening
from davsync.devtools.radicale_local import start_radicale
from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device, server_items

DEADLINE = 60.0  # a generous bound for a loaded machine: a pass takes seconds
DAEMON = '[daemon]\nsync_interval = 2\njitter = 0\n'


def _vcard(uid: str, name: str) -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            "END:VCARD\r\n")


class Notifications:
    """The datagram socket in NOTIFY_SOCKET, and everything the daemon sent to it. A thread
    reads it all the time, as systemd does: a full socket would block the daemon's sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.seen: list[str] = []
        self._unread: queue.Queue[str] = queue.Queue()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self._unread.put(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, wanted: Callable[[str], bool]) -> str:
        """The next notification (since the last one looked at) that is `wanted`."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self._unread.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no such notification; seen: {self.seen}")

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self.sock.close()


@contextmanager
def daemon(device: Device, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Notifications]]:
    with daemon_for(device.config, tmp_path) as running:
        yield running


@contextmanager
def daemon_for(config: Path, tmp_path: Path, *args: str
               ) -> Iterator[tuple[subprocess.Popen[str], Notifications]]:
    """`davsync [ARGS] --config CONFIG run` as a subprocess, once it said READY=1."""
    notes = Notifications(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notes.path), "WATCHDOG_USEC": "1000000",
           "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "davsync.cli", *args, "--config", str(config), "run"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        notes.wait_for(lambda line: line == "READY=1")
        yield proc, notes
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE)
        notes.close()


def _configure(device: Device, extra: str = DAEMON) -> None:
    device.config.write_text(device.config.read_text(encoding="utf-8") + extra, encoding="utf-8")


def _poll(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, "not reached before the deadline"
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[str], notes: Notifications) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:  # where it hangs (PYTHONFAULTHANDLER), then fail
        proc.send_signal(signal.SIGABRT)
        _out, err = proc.communicate(timeout=DEADLINE)
        raise AssertionError(f"no exit after SIGTERM: {err[-8000:]}") from None
    assert proc.returncode == 0, err
    notes.wait_for(lambda line: line == "STOPPING=1")
    assert "Traceback" not in err
    return err


def test_changes_flow_both_ways_and_sigterm_exits_cleanly(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    _configure(device)
    with daemon(device, tmp_path) as (proc, notes):
        notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
        notes.wait_for(lambda line: line == "WATCHDOG=1")
        (device.contacts / "ada.vcf").write_text(_vcard("ada-1", "Ada"), encoding="utf-8")
        _poll(lambda: "ada-1" in server_items(dav_account, "contacts"))
        url = f"{dav_account.home('contacts')}contacts/bob.vcf"
        put = httpx.put(url, content=_vcard("bob-1", "Bob"),
                        auth=(dav_account.username, dav_account.password),
                        headers={"Content-Type": "text/vcard"})
        assert put.status_code == 201
        _poll(lambda: "bob-1" in device.uids())
        _stop(proc, notes)
    after = device.sync()  # the state is consistent: nothing left to do
    assert after["exit"] == 0
    assert after["collections"]["contacts"].get("uploaded", 0) == 0
    assert after["collections"]["contacts"].get("downloaded", 0) == 0


def test_sighup_loads_a_good_config_and_keeps_the_old_one_for_a_broken_one(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    _configure(device)
    good = device.config.read_text(encoding="utf-8")
    with daemon(device, tmp_path) as (proc, notes):
        notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
        device.config.write_text(good.replace("sync_interval = 2", 'sync_interval = "x"'),
                                 encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        failed = notes.wait_for(lambda line: line.startswith("STATUS=reload failed"))
        assert "sync_interval" in failed
        assert proc.poll() is None
        # the old configuration still syncs
        (device.contacts / "ada.vcf").write_text(_vcard("ada-1", "Ada"), encoding="utf-8")
        _poll(lambda: "ada-1" in server_items(dav_account, "contacts"))
        device.config.write_text(good.replace("sync_interval = 2", "sync_interval = 3"),
                                 encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        notes.wait_for(lambda line: line.startswith("STATUS=configuration reloaded"))
        notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
        err = _stop(proc, notes)
    assert err.count("sync_interval") == 1  # the broken config reported once


def test_a_server_gone_and_back_gets_the_queued_change_and_the_daemon_stays_up(
    tmp_path: Path
) -> None:
    server = start_radicale(tmp_path / "radicale")
    server.add_user("u", "pw-u")
    account = DavAccount(server, "u", "pw-u")
    device = Device(tmp_path / "d", account)
    _configure(device)
    try:
        with daemon(device, tmp_path) as (proc, notes):
            notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
            server.stop()
            (device.contacts / "ada.vcf").write_text(_vcard("ada-1", "Ada"), encoding="utf-8")
            notes.wait_for(lambda line: line.startswith("STATUS=sync failed"))
            assert proc.poll() is None
            server.proc = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config",
                 str(tmp_path / "radicale" / "radicale.conf")])
            wait_listening(server.port, proc=server.proc)
            _poll(lambda: "ada-1" in server_items(account, "contacts"))
            assert proc.poll() is None
            _stop(proc, notes)
    finally:
        server.stop()


def test_status_shows_the_daemon_its_next_runs_and_says_when_none_runs(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    device = Device(tmp_path / "d", dav_account)
    _configure(device)
    with daemon(device, tmp_path) as (proc, notes):
        notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
        out = json.loads(device.run("status", "--json").stdout)
        running = out["daemon"]
        assert running["running"] is True and running["pid"] == proc.pid
        assert running["mode"] == "both" and running["sync_runs"] >= 1
        assert datetime.fromisoformat(running["jobs"]["sync"]["next_run"])
        assert out["sync"]["contacts"]["pending"] == 0
        plain = device.run("status").stdout
        assert f"daemon: running since {running['started']} (pid {proc.pid}); mode both " \
            f"(set by {device.config} [daemon])" in plain
        assert "  next sync: " in plain
        _stop(proc, notes)
    stopped = device.run("status")
    assert f"daemon: not running; mode both (set by {device.config} [daemon])" in stopped.stdout
    assert json.loads(device.run("status", "--json").stdout)["daemon"]["jobs"] == {}
