"""The progress display: a bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import io

from davsync.backup.progress import Progress, human_bytes

MiB = 1 << 20


def test_progress_prints_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress("backup", stream=out, interval=0.0)
    progress.start(2, 2 * MiB)
    progress.advance(MiB)
    progress.file_done()
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines and lines[-1].startswith("backup: 1/2 files, 1.0 MiB/2.0 MiB")
    assert "/s" in lines[-1] and "\r" not in out.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_with_files_bytes_rate_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress("backup", stream=out)
    progress.start(3, 3 * MiB)
    progress.advance(2 * MiB)
    progress.file_done()
    progress.close()
    text = out.getvalue()
    assert "\r" in text and "backup" in text
    assert "1/3 files" in text and "2.00M/3.00M" in text and "B/s" in text


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (5, 2048, 3 * MiB, 5 << 30)] == [
        "5 B", "2.0 KiB", "3.0 MiB", "5.0 GiB"]
