from __future__ import annotations

from davsync.backup.model import Record, ScannedFile, plan, undeleted

DAY = 86400.0


def rec(name: str, size: int = 10, mtime: int = 1, inode: int | None = 7,
        deleted_at: float | None = None) -> Record:
    return Record("images", name, f"/p/{name}", size, mtime, inode, "h", f"data/{name}", size + 52,
                  0.0, deleted_at)


def scanned(name: str, size: int = 10, mtime: int = 1, inode: int = 7) -> ScannedFile:
    return ScannedFile("images", name, f"/p/{name}", size, mtime, inode)


def test_unchanged_files_are_neither_read_nor_sent() -> None:
    p = plan([rec("a")], [scanned("a")], now=100.0, retention_seconds=30 * DAY)
    assert p.unchanged == [rec("a")] and not p.upload and not p.check_hash


def test_new_and_resized_files_are_sent() -> None:
    p = plan([rec("a")], [scanned("a", size=11), scanned("b")], 100.0, 30 * DAY)
    assert [(f.name, prev is not None) for f, prev in p.upload] == [("a", True), ("b", False)]
    assert p.upload_bytes == 21


def test_same_size_other_mtime_or_inode_is_hashed_first() -> None:
    p = plan([rec("a"), rec("b"), rec("c", inode=None)],
             [scanned("a", mtime=2), scanned("b", inode=8), scanned("c")], 100.0, 30 * DAY)
    assert sorted(f.name for f, _ in p.check_hash) == ["a", "b", "c"]
    assert not p.upload


def test_deleted_files_wait_for_the_retention() -> None:
    gone = rec("a")
    p = plan([gone], [], now=100.0, retention_seconds=30 * DAY)
    assert p.mark_deleted == [gone] and not p.expired
    marked = rec("a", deleted_at=100.0)
    assert plan([marked], [], 100.0 + 29 * DAY, 30 * DAY).expired == []
    assert plan([marked], [], 100.0 + 30 * DAY, 30 * DAY).expired == [marked]
    assert plan([marked], [], 100.0 + 31 * DAY, 30 * DAY).mark_deleted == []


def test_a_file_that_comes_back_is_checked_not_resent() -> None:
    marked = rec("a", deleted_at=50.0)
    p = plan([marked], [scanned("a")], 100.0, 30 * DAY)
    assert [f.name for f, _ in p.check_hash] == ["a"]
    back = undeleted(marked, scanned("a", mtime=5))
    assert back.deleted_at is None and back.mtime_ns == 5 and back.object == marked.object


def test_pack_batches_cut_by_size_and_keep_order() -> None:
    from davsync.backup.upload import PACK_TARGET, pack_batches

    work = [(scanned(f"f{i}", size=PACK_TARGET // 3), None, False) for i in range(7)]
    batches = pack_batches(work)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [w[0].name for b in batches for w in b] == [f"f{i}" for i in range(7)]
    assert pack_batches([]) == []
