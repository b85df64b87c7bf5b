"""The systemd notify protocol against a real datagram socket, as systemd listens on it."""

from __future__ import annotations

import logging
import os
import socket
import struct
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from davsync.app.notify import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket at a short path (AF_UNIX paths end at 108 bytes) and its
    NOTIFY_SOCKET value; it passes credentials like systemd's, to see who sent."""
    folder = tempfile.mkdtemp(prefix="ntf", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(10)
    try:
        yield path, sock
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(folder)


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_each_notification_is_one_datagram(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready() and received(sock) == "READY=1"
    assert notifier.status("syncing contacts\nand calendars")
    assert received(sock) == "STATUS=syncing contacts and calendars"
    assert notifier.watchdog() and received(sock) == "WATCHDOG=1"
    assert notifier.reloading(monotonic_usec=1234) and received(sock) == (
        "RELOADING=1\nMONOTONIC_USEC=1234")
    assert notifier.stopping() and received(sock) == "STOPPING=1"


def test_reloading_stamps_the_monotonic_clock(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    before = time.monotonic_ns() // 1000  # CLOCK_MONOTONIC on Linux, as systemd wants
    assert Notifier.from_environ({"NOTIFY_SOCKET": path}).reloading()
    after = time.monotonic_ns() // 1000
    first, stamp = received(sock).split("\n")
    assert first == "RELOADING=1" and stamp.startswith("MONOTONIC_USEC=")
    assert before <= int(stamp.partition("=")[2]) <= after


def test_the_kernel_names_this_process_as_sender(listener: tuple[str, socket.socket]) -> None:
    """systemd's NotifyAccess=main accepts a datagram only from the main process."""
    path, sock = listener
    Notifier.from_environ({"NOTIFY_SOCKET": path}).ready()
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    assert data == b"READY=1"
    credentials = [d for level, kind, d in ancillary
                   if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    assert credentials and struct.unpack("3i", credentials[0])[0] == os.getpid()


def test_abstract_socket_names_start_with_at() -> None:
    name = f"davsync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert Notifier.from_environ({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(sock) == "READY=1"


def test_without_notify_socket_nothing_is_sent_or_raised() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled and notifier.watchdog_seconds is None
    assert not any((notifier.ready(), notifier.status("x"), notifier.watchdog(),
                    notifier.reloading(), notifier.stopping()))


def test_children_do_not_inherit_the_socket_or_the_watchdog(
    listener: tuple[str, socket.socket],
) -> None:
    env = {"NOTIFY_SOCKET": listener[0], "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1",
           "HOME": "/home/alice"}
    Notifier.from_environ(env)
    assert env == {"HOME": "/home/alice"}
    kept = {"NOTIFY_SOCKET": listener[0]}
    assert Notifier.from_environ(kept, unset=False).enabled and kept == {
        "NOTIFY_SOCKET": listener[0]}


@pytest.mark.parametrize(("usec", "for_pid", "seconds"), [
    ("30000000", None, 30.0),
    ("30000000", "4242", 30.0),
    ("30000000", "4243", None),  # meant for another process
    ("30000000", "x", None),
    ("0", None, None),
    ("-5", None, None),
    ("ten", None, None),
    (None, "4242", None),
])
def test_watchdog_interval(usec: str | None, for_pid: str | None, seconds: float | None
                           ) -> None:
    env = {k: v for k, v in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", for_pid)) if v}
    notifier = Notifier.from_environ(env, pid=4242)
    assert notifier.watchdog_seconds == seconds
    assert notifier.watchdog_ping_every == (None if seconds is None else seconds / 2)


def test_a_failed_send_is_warned_once_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    gone = str(tmp_path / "no-such-socket")
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": gone})
    with caplog.at_level(logging.DEBUG, logger="davsync.app.notify"):
        assert not notifier.ready()
        assert not notifier.watchdog()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"cannot notify systemd at NOTIFY_SOCKET={gone} (No such file or "
                        "directory); systemd may consider the service not started or hung"]


@pytest.mark.parametrize("raw", ["vsock:2:1234", "relative/path", "@"])
def test_an_address_davsync_cannot_use_is_named(
    raw: str, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="davsync.app.notify"):
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": raw})
    assert not notifier.enabled and not notifier.ready()
    assert [r.getMessage() for r in caplog.records] == [
        f"NOTIFY_SOCKET={raw} is not a path or @abstract socket name davsync can use; "
        "systemd will get no notifications"]
