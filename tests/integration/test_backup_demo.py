"""`make demo`'s backup half: sample media and vdirs to a throw-away SeaweedFS and back."""

from __future__ import annotations

from pathlib import Path

from davsync.devtools.backup_demo import SAMPLES, run_demo


def test_demo_backs_up_and_restores_the_samples_byte_identical(tmp_path: Path) -> None:
    summary = run_demo(tmp_path / "demo")
    assert "compared with the originals: all byte-identical" in summary
    assert "backup (no changes)" in summary and ", 0 B (" in summary.splitlines()[2]
    restored = tmp_path / "demo" / "restored"
    for png in (SAMPLES / "media" / "Pictures").rglob("*.png"):
        rel = png.relative_to(SAMPLES / "media")
        assert (restored / "images" / rel).read_bytes() == png.read_bytes()
    assert "Demo-passphrase-1" not in summary
