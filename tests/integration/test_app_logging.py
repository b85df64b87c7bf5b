"""What `davsync` logs, end to end: `-v` and `-vv` against a real Radicale, and the journal's
one-line-per-event format when stderr is the journal's stream (JOURNAL_STREAM)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_radicale import ROOT, Device


def run_with_stderr_in(path: Path, device: Device, *args: str, journal: bool
                       ) -> subprocess.CompletedProcess[str]:
    """Runs davsync with stderr going to the file `path`; with `journal`, JOURNAL_STREAM
    names that file as systemd names the journal's socket. Returns stderr's content."""
    with open(path, "w", encoding="utf-8") as stderr:
        st = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + (0 if journal else 1)}"}
        proc = subprocess.run(
            [sys.executable, "-m", "davsync.cli", "--config", str(device.config), *args],
            stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300, cwd=ROOT, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout,
                                       path.read_text(encoding="utf-8"))


def warned_device(tmp_path: Path, account: DavAccount) -> Device:
    """A device whose config others can read: every command warns about it."""
    device = Device(tmp_path / "device", account)
    device.config.chmod(0o644)
    return device


def test_under_journald_each_event_is_one_line_with_its_priority(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    device = warned_device(tmp_path, dav_account)
    journal = run_with_stderr_in(tmp_path / "journal", device, "status", journal=True)
    assert journal.returncode == 0
    assert journal.stderr == (
        f"<4>{device.config} holds [server] password and other users can read it: run "
        f"`chmod 600 {device.config}` logger=davsync.config\n")


def test_an_inherited_journal_stream_that_is_not_stderr_keeps_terminal_lines(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    device = warned_device(tmp_path, dav_account)
    redirected = run_with_stderr_in(tmp_path / "file", device, "status", journal=False)
    assert redirected.stderr == (
        f"WARNING davsync.config: {device.config} holds [server] password and other users can "
        f"read it: run `chmod 600 {device.config}`\n")


def test_v_shows_items_and_vv_adds_one_line_per_request(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    device = Device(tmp_path / "device", dav_account)
    (device.contacts / "no-uid.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Nobody Knows\r\nEND:VCARD\r\n", encoding="utf-8")
    verbose = device.run("-v", "sync")
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO davsync.engine: " in verbose.stderr and "no UID; assigning one" in verbose.stderr
    assert "HTTP Request" not in verbose.stderr and "DEBUG" not in verbose.stderr

    (device.contacts / "new.vcf").write_text(  # a change, or the early probes answer alone
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:new-1\r\nFN:New\r\nEND:VCARD\r\n", encoding="utf-8")
    very = device.run("-vv", "sync")
    assert very.returncode == 0, very.stderr
    requests = [line for line in very.stderr.splitlines() if "HTTP Request: " in line]
    assert requests and all(line.startswith("INFO httpx: HTTP Request: ") for line in requests)
    assert "DEBUG httpcore" not in very.stderr  # connection traces carry response headers
    for text in (verbose.stdout, verbose.stderr, very.stdout, very.stderr):
        assert dav_account.password not in text
