"""The vdir device store: atomic writes, refusing stale writes, unsafe names, leftovers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, wait
from pathlib import Path

import pytest

from davsync.fsutil import HelperLost, helper_ready, in_helper, remove_later, stop_background
from davsync.sources import vdir as vdir_module
from davsync.sources.base import SourceError, StoreUnavailable
from davsync.sources.vdir import VdirSource


@pytest.fixture(autouse=True)
def _no_helper() -> Iterator[None]:
    """Each test starts with no helper process: once one is ready (a large sync run earlier
    in this process starts it), every batch is left to it, and these tests check the files
    written here as well. One a test started is stopped after it."""
    stop_background()
    yield
    stop_background()


def test_create_write_delete_with_signatures(tmp_path: Path) -> None:
    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("a b/c", b"one")
    assert "/" not in name and name.endswith(".vcf")
    assert src.scan() == {name: sig}
    sig2 = src.write(name, b"two", sig)
    assert src.read(name) == b"two"
    with pytest.raises(SourceError, match="changed while syncing"):
        src.write(name, b"three", sig)  # stale signature: the user's edit wins
    src.delete(name, sig2)
    assert src.scan() == {}


def test_create_never_replaces_an_existing_file(tmp_path: Path) -> None:
    src = VdirSource(tmp_path, "contacts")
    first, _ = src.create("same", b"1")
    second, _ = src.create("same", b"2")
    assert first != second
    assert src.read(first) == b"1" and src.read(second) == b"2"


@pytest.mark.parametrize("name", ["../escape.vcf", "/etc/passwd", "..", ""])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(SourceError, match="unsafe"):
        VdirSource(tmp_path, "contacts").read(name)


def test_stale_temporary_files_are_cleaned_and_fresh_ones_kept(tmp_path: Path) -> None:
    old = tmp_path / ".davsync-old.tmp"
    new = tmp_path / ".davsync-new.tmp"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert VdirSource(tmp_path, "contacts").scan() == {}
    assert not old.exists() and new.exists()


def test_entries_named_like_items_that_are_not_files_are_listed_as_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "real.vcf").write_bytes(b"x")
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link.vcf").symlink_to(tmp_path / "target")
    (tmp_path / "folder.vcf").mkdir()
    os.mkfifo(tmp_path / "pipe.vcf")
    (tmp_path / "notes.txt").mkdir()  # not named like an item: none of our business
    src = VdirSource(tmp_path, "contacts")
    assert set(src.scan()) == {"real.vcf"}
    assert {name: why.split(",")[0] for name, why in src.skipped.items()} == {
        "link.vcf": "a symbolic link", "folder.vcf": "a folder", "pipe.vcf": "a named pipe",
    }


def test_a_folder_under_a_file_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(SourceError, match="is not a folder"):
        VdirSource(tmp_path / "file" / "contacts", "contacts").scan()


def test_a_folder_that_refuses_writes_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read-only folder does (simulated: the tests may run as root, who may write)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("a", b"1")
    assert src.flush() == {}
    monkeypatch.setattr(os, "open", refuse)  # the temporary file beside the item
    monkeypatch.setattr(os, "unlink", refuse)
    monkeypatch.setattr(os, "rename", refuse)  # a deletion first sets the file aside
    with pytest.raises(SourceError, match="cannot write: Permission denied"):
        src.create("b", b"2")
    with pytest.raises(SourceError, match="cannot write: Permission denied"):
        src.write(name, b"3", sig)
    with pytest.raises(SourceError, match="cannot delete: Permission denied"):
        src.delete(name, sig)


def test_a_batch_of_writes_is_synced_once_then_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: one sync of the data for a batch instead of one fsync per file, and no item
    under its name before its data is durable (a crash leaves old or new, never torn)."""
    import davsync.fsutil as fsutil

    calls = {"fsync": 0, "syncfs": 0}
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls["fsync"] += 1
        real_fsync(fd)

    def counting_syncfs(folder: Path) -> bool:
        calls["syncfs"] += 1
        return True

    monkeypatch.setattr(fsutil.os, "fsync", counting_fsync)
    monkeypatch.setattr(fsutil, "_syncfs", counting_syncfs)
    src = VdirSource(tmp_path, "contacts")
    made = [src.create(f"uid-{n}", f"item {n}".encode()) for n in range(20)]
    on_disk = set(os.listdir(tmp_path))
    assert not on_disk & {name for name, _ in made}  # not named before the data is synced
    assert src.scan() == dict(made)  # but the store already answers with them
    assert src.flush() == {}
    assert calls == {"fsync": 1, "syncfs": 1}  # the data once, the directory once
    assert VdirSource(tmp_path, "contacts").scan() == dict(made)
    assert sorted(os.listdir(tmp_path)) == sorted(name for name, _ in made)
    assert src.read(made[3][0]) == b"item 3"


def test_without_syncfs_each_staged_file_is_fsynced_before_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import davsync.fsutil as fsutil

    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(fsutil, "_LIBC", None)
    monkeypatch.setattr(fsutil.os, "fsync", recording_fsync)
    src = VdirSource(tmp_path, "contacts")
    made = [src.create(f"uid-{n}", b"x") for n in range(3)]
    assert src.flush() == {}
    assert len([p for p in synced if ".davsync-" in p]) == 3 and synced[-1] == str(tmp_path)
    assert src.scan() == dict(made)


def test_a_name_taken_before_flush_is_returned_and_the_other_file_kept(tmp_path: Path) -> None:
    src = VdirSource(tmp_path, "contacts")
    name, _ = src.create("uid-1", b"ours")
    (tmp_path / name).write_bytes(b"someone else's")
    failed = src.flush()
    assert set(failed) == {name} and "appeared while syncing" in failed[name]
    assert (tmp_path / name).read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_a_file_edited_before_flush_is_not_replaced(tmp_path: Path) -> None:
    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("uid-1", b"one")
    assert src.flush() == {}
    src.write(name, b"server version", sig)
    os.utime(tmp_path / name, ns=(1, 1))  # the user saved the file meanwhile
    (tmp_path / name).write_bytes(b"user's edit")
    failed = src.flush()
    assert set(failed) == {name} and "changed while syncing" in failed[name]
    assert (tmp_path / name).read_bytes() == b"user's edit"
    assert os.listdir(tmp_path) == [name]


def test_a_new_name_is_chosen_from_the_scan_casefolded(tmp_path: Path) -> None:
    """After a scan the names are chosen from what it saw (no file system call per name):
    a name it saw, in any letter case (case-insensitive file systems), is taken."""
    (tmp_path / "ABC.vcf").write_bytes(b"theirs")
    src = VdirSource(tmp_path, "contacts")
    src.scan()
    name, _ = src.create("abc", b"ours")
    assert name == "abc-1.vcf"
    assert src.flush() == {}
    assert (tmp_path / "ABC.vcf").read_bytes() == b"theirs"


def test_a_name_freed_by_a_delete_is_free_again(tmp_path: Path) -> None:
    (tmp_path / "abc.vcf").write_bytes(b"old")
    src = VdirSource(tmp_path, "contacts")
    src.delete("abc.vcf", src.scan()["abc.vcf"])
    assert src.create("abc", b"new")[0] == "abc.vcf"


def test_a_name_taken_after_the_scan_is_refused_when_placed_and_free_next_run(
    tmp_path: Path,
) -> None:
    """The scan is not asked again per name: a file someone creates after it under the name
    chosen is kept and the create reported; the next run's scan sees it and picks another."""
    src = VdirSource(tmp_path, "contacts")
    src.scan()
    (tmp_path / "uid-1.vcf").write_bytes(b"someone else's")
    name, _ = src.create("uid-1", b"ours")
    assert "appeared while syncing" in src.flush()[name]
    assert (tmp_path / "uid-1.vcf").read_bytes() == b"someone else's"
    again = VdirSource(tmp_path, "contacts")
    again.scan()
    assert again.create("uid-1", b"ours")[0] == "uid-1-1.vcf"


def test_a_new_folder_has_every_name_free(tmp_path: Path) -> None:
    src = VdirSource(tmp_path / "new", "contacts")
    src.create_store()
    made = [src.create("same", b"x")[0] for _ in range(2)]
    assert made == ["same.vcf", "same-1.vcf"]
    assert src.flush() == {}
    assert sorted(os.listdir(tmp_path / "new")) == sorted(made)


def test_a_replaced_file_is_kept_aside_never_scanned_and_freed_at_settle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replace first gives the old file a temporary second name, so the replace frees no
    inode (the costly part on ext4). That file is kept for a later write (none comes here)
    and freed at `settle`; meanwhile a scan does not take it for an item. Without hard links
    the replace is a plain one."""
    import davsync.fsutil as fsutil

    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("uid-1", b"one")
    assert src.flush() == {}
    src.write(name, b"two", sig)
    assert src.flush() == {}
    asides = [p for p in os.listdir(tmp_path) if p.endswith(".old")]
    assert len(asides) == 1 and (tmp_path / asides[0]).read_bytes() == b"one"
    assert list(src.scan()) == [name] and src.read(name) == b"two"
    src.settle()
    assert os.listdir(tmp_path) == [name]

    def no_links(src_path: str, dst: str) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(fsutil.os, "link", no_links)
    src.write(name, b"three", src.scan()[name])
    assert src.flush() == {}
    src.settle()
    assert os.listdir(tmp_path) == [name] and src.read(name) == b"three"


def test_a_deleted_file_is_gone_at_once_and_freed_at_settle(tmp_path: Path) -> None:
    """A deletion renames the file to a temporary name (cheap: nothing is freed); the item is
    gone from the scan at once, and no file is left once the run settles."""
    src = VdirSource(tmp_path, "contacts")
    name, sig = src.create("uid-1", b"one")
    assert src.flush() == {}
    src.delete(name, sig)
    assert src.scan() == {} and not (tmp_path / name).exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".gone")]
    assert src.flush() == {}
    src.settle()
    assert os.listdir(tmp_path) == []


def _inode(path: Path) -> int:
    return path.stat().st_ino


def _leases_work(folder: Path) -> bool:
    """Whether this file system grants write leases, which file reuse depends on (Linux
    local file systems do; a file is never reused where they are refused)."""
    import davsync.fsutil as fsutil

    probe = folder / "lease-probe"
    probe.write_bytes(b"")
    fd = os.open(probe, os.O_WRONLY)
    try:
        return fsutil._nobody_else_has_open(fd)
    finally:
        os.close(fd)
        probe.unlink()


def test_files_out_of_use_take_the_next_writes_data(tmp_path: Path) -> None:
    """A replaced or deleted file, once its removal is durable, takes a later write's data
    instead of a new file being created (on ext4 both creating and freeing an inode are
    costly): the new versions live in the old files' inodes, whole, with sigs that match
    the files, and nothing is left over."""
    src = VdirSource(tmp_path, "contacts")
    a, sig_a = src.create("a", b"A1")
    b, sig_b = src.create("b", b"B1" * 100)
    c, _ = src.create("c", b"C1")
    assert src.flush() == {}
    old = {_inode(tmp_path / a), _inode(tmp_path / b)}
    src.write(a, b"A2", sig_a)
    src.delete(b, sig_b)
    assert src.flush() == {}
    sig_c = src.scan()[c]
    new_c = src.write(c, b"C2", sig_c)  # short data into a reused, longer file: truncated
    d, new_d = src.create("d", b"D1")
    assert src.flush() == {}
    if _leases_work(tmp_path):  # else nothing is reused (below): new files, as before
        assert {_inode(tmp_path / c), _inode(tmp_path / d)} == old
    assert (tmp_path / c).read_bytes() == b"C2" and (tmp_path / d).read_bytes() == b"D1"
    assert src.scan() == {a: src.scan()[a], c: new_c, d: new_d}
    src.settle()
    assert sorted(os.listdir(tmp_path)) == sorted([a, c, d])


@pytest.mark.parametrize("why", ["linked", "open", "mode", "gone"])
def test_a_file_out_of_use_is_not_reused_when_something_else_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """A file out of use is reused only if nothing but our temporary name reaches it: not
    one with a second hard link (a hard-linked backup of the folder would change), not one
    another process has open (a reader of the old item must read that item whole), not one
    with a different mode (the next item would get it), and not one removed meanwhile. Then
    the write goes to a new file and the old one is left as it is (and freed)."""
    import subprocess
    import sys

    src = VdirSource(tmp_path, "contacts")
    a, sig_a = src.create("a", b"A1")
    c, _ = src.create("c", b"C1")
    assert src.flush() == {}
    backup = tmp_path.parent / f"{tmp_path.name}-backup"
    if why == "linked":
        backup.mkdir()
        os.link(tmp_path / a, backup / a)
    src.write(a, b"A2", sig_a)
    assert src.flush() == {}
    (spare,) = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
    spare_inode = spare.stat().st_ino
    reader = None
    if why == "open":  # another process holding the old version open
        reader = subprocess.Popen(
            [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'rb'); "
             "print('open', flush=True); sys.stdin.read(); print(f.read().decode())",
             str(spare)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert reader.stdout is not None and reader.stdout.readline() == "open\n"
    elif why == "mode":
        spare.chmod(0o644)
    elif why == "gone":
        spare.unlink()
    # The files given up are held back instead of freed, so the refused one is still there to
    # look at (a freed inode number may well be the new file's at once).
    held: list[str] = []
    monkeypatch.setattr(vdir_module, "remove_later", held.extend)
    src.write(c, b"C2", src.scan()[c])
    assert src.flush() == {}
    assert (tmp_path / c).read_bytes() == b"C2"
    if why != "gone":
        assert held == [str(spare)]  # refused, given up untouched
        assert spare.read_bytes() == b"A1"
        assert _inode(tmp_path / c) != spare_inode
    if why == "linked":
        assert (backup / a).read_bytes() == b"A1"
    if reader is not None:
        out, _ = reader.communicate("")
        assert out == "A1\n"
    src.settle()
    monkeypatch.undo()
    wait([f for f in [remove_later(held)] if f is not None])
    assert sorted(os.listdir(tmp_path)) == sorted([a, c])


# ---- a batch flushed in the background (`start_flush`) --------------------------------------


class _HeldSync:
    """Stands in for `sync_files` in the vdir module: the background flush waits at it until
    the test lets it go, so the test can act while a batch is under way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self.error: OSError | None = None
        real = vdir_module.sync_files

        def held(folder: Path, paths: list[str]) -> None:
            if threading.current_thread() is not threading.main_thread():
                self.started.set()
                assert self.go.wait(10), "the test never let the flush go"
                if self.error is not None:
                    raise self.error
            real(folder, paths)

        monkeypatch.setattr(vdir_module, "sync_files", held)

    def release_soon(self) -> None:
        threading.Timer(0.2, self.go.set).start()


def test_a_batch_flushed_in_the_background_is_named_only_once_its_data_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: `start_flush` places a batch on a thread of its own while the next one is
    staged; its names are not given before its data is synced, are taken meanwhile for new
    items, and its outcome comes with the next flush."""
    held = _HeldSync(monkeypatch)
    src = VdirSource(tmp_path, "contacts")
    first = [src.create(f"uid-{n}", f"item {n}".encode()) for n in range(5)]
    assert src.start_flush() == {}  # nothing was under way
    assert held.started.wait(10)
    again, _ = src.create("uid-0", b"same UID, another item")  # the name is in flight: taken
    later = [src.create(f"later-{n}", b"x") for n in range(3)]
    assert not {name for name, _ in first} & set(os.listdir(tmp_path))  # not named yet
    held.go.set()
    assert src.start_flush() == {}  # waits for the first batch, begins the second
    assert src.flush() == {}
    assert again not in {name for name, _ in first}
    assert src.scan() == {**dict(first), **dict(later), again: src.scan()[again]}
    assert (tmp_path / first[3][0]).read_bytes() == b"item 3"
    src.settle()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".davsync-")]


def test_a_name_in_a_batch_under_way_is_read_and_written_once_it_is_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files of a batch under way change names: reading, replacing or deleting one of its
    items waits for it, then sees the placed file (the sig handed out is still valid)."""
    held = _HeldSync(monkeypatch)
    src = VdirSource(tmp_path, "contacts")
    a, sig_a = src.create("a", b"A1")
    b, sig_b = src.create("b", b"B1")
    src.start_flush()
    assert held.started.wait(10)
    held.release_soon()
    assert src.read(a) == b"A1"  # waited for the placing: the staged file is named now
    sig_a2 = src.write(a, b"A2", sig_a)
    src.delete(b, sig_b)
    assert src.flush() == {}
    assert src.scan() == {a: sig_a2} and (tmp_path / a).read_bytes() == b"A2"


def test_a_name_taken_while_its_batch_waited_is_returned_by_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldSync(monkeypatch)
    src = VdirSource(tmp_path, "contacts")
    name, _ = src.create("uid-1", b"ours")
    src.start_flush()
    assert held.started.wait(10)
    (tmp_path / name).write_bytes(b"someone else's")
    held.go.set()
    failed = src.start_flush()
    assert set(failed) == {name} and "appeared while syncing" in failed[name]
    assert src.flush() == {}  # reported once
    assert (tmp_path / name).read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == [name]


def test_a_background_flush_that_fails_is_raised_and_nothing_after_it_is_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose data could not be synced is not named, and its error comes with the next
    flush; what was staged after it is dropped too (the sync records none of it), leaving no
    temporary file behind."""
    held = _HeldSync(monkeypatch)
    held.error = OSError(5, "Input/output error")
    src = VdirSource(tmp_path, "contacts")
    src.create("a", b"A1")
    src.start_flush()
    assert held.started.wait(10)
    held.go.set()
    src.create("b", b"B1")  # staged after the failed batch: dropped with it
    with pytest.raises(StoreUnavailable, match=r"cannot sync the device folder to disk "
                       r"\(Input/output error\); the files written since"):
        src.flush()
    assert src.flush() == {}  # raised once; nothing left to place
    src.settle()
    assert os.listdir(tmp_path) == []


def test_a_batch_that_replaces_or_deletes_files_is_placed_before_start_flush_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only new files are named in the background, below `_HELPER_FROM`: replacing files on
    a thread was measured to slow the applying thread (its reuse of replaced files contends
    with the placing for the interpreter lock)."""
    held = _HeldSync(monkeypatch)
    held.go.set()
    src = VdirSource(tmp_path, "contacts")
    a, sig_a = src.create("a", b"A1")
    b, sig_b = src.create("b", b"B1")
    assert src.flush() == {}
    sig_a2 = src.write(a, b"A2", sig_a)
    assert src.start_flush() == {}
    assert not held.started.is_set()  # placed here, on the applying thread
    assert (tmp_path / a).read_bytes() == b"A2"
    src.delete(b, sig_b)
    assert src.start_flush() == {}
    assert not held.started.is_set() and src.scan() == {a: sig_a2}


def test_a_large_batch_is_written_and_named_by_the_helper_with_sigs_settled_after(
    tmp_path: Path,
) -> None:
    """The `_HELPER_FROM`th file of a batch starts the helper process; once it is ready, a
    batch's data waits in memory from its first file and the helper writes, syncs and names
    its files (reusing the files the batch before took out of use): the sigs handed out
    meanwhile are placeholders that `settled` turns into the files' own, reads and
    stale-write checks see the waiting data, and a user's edit made before the helper got
    to the file is kept."""
    src = VdirSource(tmp_path, "contacts")
    size = vdir_module._HELPER_FROM + 50
    first: dict[str, int] = {}
    for i in range(size):
        name, sig = src.create(f"u{i}", b"v1 %d" % i)
        first[name] = i
        if i < vdir_module._HELPER_FROM:
            assert not sig.startswith("unwritten:")
    assert src.flush() == {}
    in_helper(os.getpid).result(30)  # the one the batch started, ready by now
    assert helper_ready()
    sigs = src.scan()
    written = {name: src.write(name, b"v2 %d" % i, sigs[name]) for name, i in first.items()}
    late = [name for name, sig in written.items() if sig.startswith("unwritten:")]
    assert len(late) == size  # every file of the batch waits for the helper
    assert src.read(late[0]) == b"v2 %d" % first[late[0]]
    with pytest.raises(SourceError, match="changed while syncing"):
        src.write(late[0], b"v3", sigs[late[0]])  # the waiting version is the one to expect
    edited = late[1]
    (tmp_path / edited).write_bytes(b"the user's")
    assert src.start_flush() == {}  # under way in the helper
    assert src.flush() == {edited: f"{tmp_path / edited} changed while syncing; left untouched"}
    on_disk = src.scan()
    for name, sig in written.items():
        if name != edited:
            assert src.settled(sig) == on_disk[name]
            assert (tmp_path / name).read_bytes() == b"v2 %d" % first[name]
    assert (tmp_path / edited).read_bytes() == b"the user's"
    again = src.write(late[2], b"v3", written[late[2]])  # a settled placeholder still matches
    assert src.flush() == {}
    assert src.settled(again) == src.scan()[late[2]]
    src.settle()
    assert sorted(os.listdir(tmp_path)) == sorted(first)


def test_a_helper_lost_while_placing_stops_the_batch_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How much of the batch the helper did is not known: the flush raises, none of its
    writes is recorded (the sync finds them again next run), nothing is left half-named."""
    def lost(work: object) -> Future[object]:
        done: Future[object] = Future()
        done.set_exception(HelperLost("the helper process stopped (EOFError)"))
        return done

    monkeypatch.setattr(vdir_module, "in_helper", lost)
    monkeypatch.setattr(vdir_module, "helper_ready", lambda: True)
    src = VdirSource(tmp_path, "contacts")
    for i in range(vdir_module._HELPER_FROM + 1):
        src.create(f"u{i}", b"v1")
    with pytest.raises(StoreUnavailable) as raised:
        src.flush()
    assert str(raised.value) == (
        "the helper process stopped (EOFError) while placing written files; the files "
        "written since the last sync were not recorded and are written again next run")
    src.settle()
    assert os.listdir(tmp_path) == []  # the files written here for the batch removed too
