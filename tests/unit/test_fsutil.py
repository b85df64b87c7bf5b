"""The one atomic-write helper: old or new file after any failure, never a torn one."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from davsync.fsutil import (
    TMP_PREFIX,
    HelperLost,
    atomic_file,
    helper_ready,
    in_background,
    in_helper,
    stop_background,
    write_atomic,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_replaces_the_file_private_from_the_first_byte(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    write_atomic(target, [b"ne", b"w"])
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _names(tmp_path) == ["f"]


def test_a_failure_while_writing_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write(b"half")
        raise RuntimeError("disk gone")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["f"]


def test_without_replace_an_existing_name_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"ours", replace=False)
    assert target.read_bytes() == b"theirs"
    assert _names(tmp_path) == ["f"]


def test_without_hard_links_a_free_name_is_still_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    write_atomic(tmp_path / "f", b"new", replace=False, mode=0o644)
    assert (tmp_path / "f").read_bytes() == b"new"
    (tmp_path / "g").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):  # a dangling symbolic link counts as taken
        write_atomic(tmp_path / "g", b"new", replace=False)
    assert _names(tmp_path) == ["f", "g"]


def test_a_symbolic_link_at_the_temporary_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / f"{TMP_PREFIX}{'0' * 16}.tmp").symlink_to(victim)
    monkeypatch.setattr("secrets.token_hex", lambda n: "0" * 16)
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "f", b"new")
    assert victim.read_bytes() == b"keep"


def test_stop_background_waits_for_the_work_and_ends_its_threads() -> None:
    release = threading.Event()
    done: list[str] = []

    def first() -> None:
        release.wait(5)
        done.append("first")

    in_background("davsync-test", first)
    in_background("davsync-test", partial(done.append, "second"))
    threading.Timer(0.2, release.set).start()
    stop_background()
    assert done == ["first", "second"]  # queued work finished, in order
    assert not [t for t in threading.enumerate() if t.name.startswith("davsync-test")]
    assert in_background("davsync-test", lambda: "again").result(5) == "again"  # made anew
    stop_background()



# The helper imports what a call names: stdlib functions here (this test module is not
# importable there).
def test_in_helper_runs_the_work_in_another_process_and_hands_back_its_value(
    tmp_path: Path
) -> None:
    stop_background()
    assert not helper_ready()
    pid = in_helper(os.getpid).result(30)
    assert pid != os.getpid() and helper_ready()
    assert in_helper(os.getpid).result(30) == pid  # the same helper again
    assert in_helper(partial(os.path.join, "a", "b")).result(30) == "a/b"
    with pytest.raises(FileNotFoundError) as raised:
        in_helper(partial(os.stat, tmp_path / "missing")).result(30)
    assert raised.value.errno == errno.ENOENT  # the helper's exception, whole
    assert in_helper(os.getpid).result(30) == pid
    stop_background()
    assert not helper_ready()
    assert in_helper(os.getpid).result(30) not in (pid, os.getpid())  # a new one
    stop_background()


def test_a_helper_gone_while_it_held_work_is_told_and_a_new_one_takes_the_next() -> None:
    pid = in_helper(os.getpid).result(30)
    with pytest.raises(HelperLost, match="the helper process stopped"):
        in_helper(partial(os.kill, pid, signal.SIGKILL)).result(30)
    assert in_helper(os.getpid).result(30) not in (pid, os.getpid())
    stop_background()


@pytest.mark.parametrize("python", ["/nonexistent/python", "/bin/false"])
def test_where_no_helper_can_start_the_work_runs_in_this_process(
    monkeypatch: pytest.MonkeyPatch, python: str
) -> None:
    """No interpreter to start, or one that ends before it says it is ready."""
    stop_background()
    monkeypatch.setattr("sys.executable", python)
    assert in_helper(os.getpid).result(30) == os.getpid()
    assert not helper_ready()
    stop_background()


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie nobody reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(sys.platform != "linux", reason="the helper's tie to its parent is Linux's")
def test_the_helper_dies_with_a_killed_davsync() -> None:
    """A `kill -9` of davsync must leave no helper writing into the device folder while the
    next run starts."""
    code = ("import os, time; from davsync.fsutil import in_helper; "
            "print(in_helper(os.getpid).result(30), flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    try:
        helper = int(parent.stdout.readline())
        assert not _gone(helper)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(helper)
