"""Re-record the sessions in tests/recordings/ from real servers.

    .venv/bin/python -m tests.recordings.record            # every session
    .venv/bin/python -m tests.recordings.record first-sync # one session

Each session is a folder: `session.json` (the server URL, the steps with their command line,
exit code and `--json` report) and one `NN-<step>.jsonl` recording per step, made by the real
`davsync --record-http` in a subprocess. `test_recordings.py` replays them without any server.
The device data the sessions start from is `DEVICE` below, written the same way here and there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
USER = "alice"
PASSWORD = "recorded-Passw0rd-1234"  # the secret test looks for it in every recording

DEVICE = {
    "contacts/ada.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:rec-ada\r\nFN:Ada Lovelace\r\n"
                        "N:Lovelace;Ada;;;\r\nTEL:+44 20 7946 0001\r\nEND:VCARD\r\n",
    "contacts/alan.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:rec-alan\r\nFN:Alan Turing\r\n"
                         "N:Turing;Alan;;;\r\nEMAIL:alan@example.org\r\nEND:VCARD\r\n",
    "calendars/meeting.ics": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rec//EN\r\n"
                             "BEGIN:VEVENT\r\nUID:rec-meeting\r\nDTSTAMP:20260101T000000Z\r\n"
                             "DTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
                             "SUMMARY:Recorded meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
}


def write_device(root: Path) -> None:
    for name, text in DEVICE.items():
        path = root / "device" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    (root / "device" / "contacts").mkdir(parents=True, exist_ok=True)
    (root / "device" / "calendars").mkdir(parents=True, exist_ok=True)


def basic_config(root: Path, url: str, password: str) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'[server]\nurl = "{url}"\nusername = "{USER}"\npassword = "{password}"\n'
        f'[device]\ncontacts = "{root / "device" / "contacts"}"\n'
        f'calendars = "{root / "device" / "calendars"}"\n'
        f'[state]\ndir = "{root / "state"}"\n', encoding="utf-8")
    return config


def run_step(config: Path, args: list[str], record_dir: Path) -> dict[str, Any]:
    """One `davsync` command, recorded; its exit code and `--json` report."""
    before = set(record_dir.glob("*.jsonl"))
    proc = subprocess.run(
        [sys.executable, "-m", "davsync.cli", "--config", str(config),
         "--record-http", str(record_dir), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    made = sorted(set(record_dir.glob("*.jsonl")) - before)
    assert len(made) == 1, (made, proc.stderr)
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    return {"args": args, "exit": proc.returncode, "report": report,
            "device": device_files(config.parent), "file": made[0]}


def device_files(root: Path) -> dict[str, str]:
    """What the device holds after a step: relative path -> SHA-256 of the bytes."""
    folder = root / "device"
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def save(name: str, url: str, steps: list[dict[str, Any]]) -> None:
    folder = HERE / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    out = []
    for i, step in enumerate(steps, 1):
        target = folder / f"{i:02d}-{step['args'][0]}.jsonl"
        shutil.move(step.pop("file"), target)
        out.append({**step, "recording": target.name})
    (folder / "session.json").write_text(
        json.dumps({"url": url, "steps": out}, indent=1) + "\n", encoding="utf-8")


def record_sync() -> None:
    """first-sync: a first sync of a small vdir to Radicale, then a no-op sync."""
    from davsync.devtools.radicale_local import start_radicale

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_radicale(root / "radicale")
        try:
            server.add_user(USER, PASSWORD)
            write_device(root)
            config = basic_config(root, server.url, PASSWORD)
            steps = [run_step(config, ["sync", "--json"], root) for _ in range(2)]
        finally:
            server.stop()
        save("first-sync", server.url, steps)


SESSIONS: dict[str, Callable[[], None]] = {"first-sync": record_sync}


def main(names: list[str]) -> None:
    for name in names or list(SESSIONS):
        SESSIONS[name]()
        print(f"recorded {HERE / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
