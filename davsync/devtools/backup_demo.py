"""The backup half of `make demo`: sample media to a local S3 (SeaweedFS), and back again.

`run_demo` starts `weed mini` on free loopback ports, backs up the samples twice (the second
run sends nothing), restores everything into a new folder, checks every byte and mtime, and
stops the server. Run alone with `python -m davsync.devtools.backup_demo [WORKDIR]`.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from davsync.app.backup import backup_run, restore_run
from davsync.app.backup_config import parse_backup
from davsync.backup.progress import human_bytes
from davsync.backup.run import RunOptions
from davsync.backup.stats import Stats
from davsync.config import load_config
from davsync.devtools.seaweed_local import start_local_s3

DEMO_PASSPHRASE = "Demo-passphrase-1"  # noqa: S105 - a demo against a throw-away server
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
FOLDERS = {"images": "Pictures", "videos": "Videos", "documents": "Documents"}


def _line(kind: str, stats: Stats) -> str:
    out = stats.to_json()
    cats = ", ".join(f"{name} {c['succeeded_files']}/{c['total_files']}"
                     for name, c in out["categories"].items())
    return (f"{kind}: {out['succeeded_files']}/{out['total_files']} files, "
            f"{out['failed_files']} failed, {human_bytes(out['bytes_processed'])} ({cats})")


def _compare(source: Path, restored: Path) -> list[str]:
    """Paths (relative to source) that differ in bytes or mtime, or are missing."""
    bad = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        other = restored / path.relative_to(source)
        if not other.is_file() or not filecmp.cmp(path, other, shallow=False):
            bad.append(f"{path.relative_to(source)} (content)")
        elif other.stat().st_mtime_ns != path.stat().st_mtime_ns and restored.name not in (
                "contacts", "calendars"):
            bad.append(f"{path.relative_to(source)} (mtime)")
    return bad


def run_demo(workdir: Path, media_dir: Path = SAMPLES / "media",
             contacts_dir: Path | None = SAMPLES / "contacts",
             calendars_dir: Path | None = SAMPLES / "calendars") -> str:
    """Back up `media_dir` (Pictures/, Videos/, Documents/) and the vdirs, restore, compare."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = start_local_s3(workdir / "s3")
    try:
        config = workdir / "backup-demo.toml"
        device = "".join(f'{k} = "{v}"\n' for k, v in
                         (("contacts", contacts_dir), ("calendars", calendars_dir)) if v)
        roots = "".join(f'{cat} = ["{media_dir / folder}"]\n' for cat, folder in FOLDERS.items())
        config.write_text(f"""# written by the backup demo; its S3 server lives only during the demo
[server]
url = "http://127.0.0.1:9/"
username = "demo"
[device]
{device}[state]
dir = "{workdir / 'state'}"
[backup]
endpoint = "{server.endpoint}"
bucket = "davsync-demo"
prefix = "demo-laptop"
access_key = "{server.access_key}"
secret_key = "{server.secret_key}"
passphrase = "{DEMO_PASSPHRASE}"
{roots}""", encoding="utf-8")
        config.chmod(0o600)
        cfg = parse_backup(load_config(config))
        lines = [f"backup demo: local S3 at {server.endpoint}, client-side encryption"]
        quiet = RunOptions(progress=False)
        lines.append(_line("backup (first run)", backup_run(cfg, quiet).run()))
        lines.append(_line("backup (no changes)", backup_run(cfg, quiet).run()))
        target = workdir / "restored"
        restore = restore_run(cfg, target, opts=None)
        restore.opts.progress = False
        lines.append(_line("restore", restore.run()))
        bad: list[str] = []
        for cat, folder in FOLDERS.items():
            if (media_dir / folder).is_dir():
                bad += _compare(media_dir / folder, target / cat / folder)
        for cat, vdir in (("contacts", contacts_dir), ("calendars", calendars_dir)):
            if vdir is not None and vdir.is_dir():
                bad += _compare(vdir, target / cat)
        lines.append(f"compared with the originals: {bad or 'all byte-identical'}")
        lines.append(f"restored into {target}")
        return "\n".join(lines)
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="davsync-backup-demo-"))
    summary = run_demo(workdir)
    print(summary)
    return 0 if "all byte-identical" in summary else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
