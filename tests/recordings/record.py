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
import os
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
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
        env={**os.environ, "DAVSYNC_KEYRING": "0"})
    made = sorted(set(record_dir.glob("*.jsonl")) - before)
    assert len(made) == 1, (made, proc.stderr)
    assert proc.returncode == 0 or (proc.returncode == 1 and args[0] == "sync"), proc.stderr
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    return {"args": [a.replace(str(config.parent), "{root}") for a in args],
            "exit": proc.returncode, "report": report,
            "device": device_files(config.parent), "file": made[0]}


def device_files(root: Path) -> dict[str, str]:
    """What the device holds after a step: relative path -> SHA-256 of the bytes."""
    folder = root / "device"
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def save(dest: Path, kind: str, url: str, steps: list[dict[str, Any]]) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    out = []
    for i, step in enumerate(steps, 1):
        target = dest / f"{i:02d}-{step['args'][0]}.jsonl"
        shutil.move(step.pop("file"), target)
        out.append({**step, "recording": target.name})
    (dest / "session.json").write_text(
        json.dumps({"kind": kind, "url": url, "steps": out}, indent=1) + "\n", encoding="utf-8")


def record_sync(dest: Path) -> list[str]:
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
        save(dest, "basic", server.url, steps)
    return [PASSWORD]


def provision_config(root: Path, provision_url: str, assertion_command: str) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'[server]\nauth = "provision"\nprovision_url = "{provision_url}"\n'
        f"assertion_command = '{assertion_command}'\ndevice_name = \"recorded laptop\"\n"
        f'[device]\ncontacts = "{root / "device" / "contacts"}"\n'
        f'calendars = "{root / "device" / "calendars"}"\n'
        f'[state]\ndir = "{root / "state"}"\n', encoding="utf-8")
    return config


def record_reprovision(dest: Path) -> list[str]:
    """reprovision: `auth = "provision"` against `davsync server`: the first sync provisions;
    the server then revokes the device, and the next sync gets a 401, provisions again once
    and syncs."""
    from davsync.credentials.store import FileSecretStore, load_device
    from davsync.server.devissuer import DevIssuer
    from tests.fixtures.davsync_server import start_davsync_server, stop_davsync_server

    secrets: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, DevIssuer() as issuer:
        root = Path(tmp)
        server = start_davsync_server(root / "server", issuer)
        try:
            write_device(root)
            config = provision_config(root, server.provision_url,
                                      server.assertion_command("recorded-user"))
            store = FileSecretStore(root / "state" / "credentials.json")
            steps = [run_step(config, ["sync", "--json"], root)]
            first = load_device(store)
            assert first is not None
            server.revoke(first.username, first.device_id)
            steps.append(run_step(config, ["sync", "--json"], root))
            second = load_device(store)
            assert second is not None and second.password != first.password
            secrets += [first.password.reveal(), second.password.reveal()]
        finally:
            stop_davsync_server(server)
        save(dest, "provision", server.provision_url, steps)
    return secrets


PASSPHRASE = "Recorded passphrase: correct horse battery 42"
MEDIA = {"Pictures/sunset.jpg": 3000, "Documents/notes.txt": 500}


def write_media(root: Path) -> None:
    for name, size in MEDIA.items():
        path = root / "media" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32 + 1))
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


def backup_config(root: Path, state: str, endpoint: str, access_key: str, secret_key: str
                  ) -> Path:
    config = root / f"{state}.toml"
    config.write_text(
        f'[server]\nurl = "http://127.0.0.1:9/"\nusername = "nobody"\n'
        f'[device]\ncontacts = "{root / "device" / "contacts"}"\n'
        f'calendars = "{root / "device" / "calendars"}"\n'
        f'[state]\ndir = "{root / state}"\n'
        f'[backup]\nendpoint = "{endpoint}"\nbucket = "recorded"\nprefix = "laptop"\n'
        f'access_key = "{access_key}"\nsecret_key = "{secret_key}"\nencryption = "sse-c"\n'
        f'passphrase = "{PASSPHRASE}"\nimages = ["{root / "media" / "Pictures"}"]\n'
        f'documents = ["{root / "media" / "Documents"}"]\n', encoding="utf-8")
    config.chmod(0o600)
    return config


def record_backup(dest: Path) -> list[str]:
    """backup-restore: a small backup (SSE-C) to SeaweedFS, then a restore of it from a fresh
    state directory (another machine)."""
    import base64

    from davsync.app.backup import open_backup_repository
    from davsync.app.backup_config import parse_backup
    from davsync.config import load_config
    from davsync.devtools.seaweed_local import start_local_s3

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s3 = start_local_s3(root / "s3")
        try:
            write_device(root)
            write_media(root)
            made = backup_config(root, "state", s3.endpoint, s3.access_key, s3.secret_key)
            steps = [run_step(made, ["backup", "-q"], root)]
            fresh = backup_config(root, "fresh", s3.endpoint, s3.access_key, s3.secret_key)
            steps.append(run_step(fresh, ["restore", "--to", str(root / "device" / "restored"),
                                          "-q"], root))
            repo = open_backup_repository(parse_backup(load_config(made)), create=False)
            sse_c = repo.keys.sse_c
            repo.close()
        finally:
            s3.stop()
        # A backup names its packs at random and seals with random nonces: its requests are
        # never the same twice, so only the restore (which reads what is listed) replays.
        steps[0]["replay"] = False
        save(dest, "backup", s3.endpoint, steps)
    md5 = hashlib.md5(sse_c, usedforsecurity=False).digest()
    return [PASSPHRASE, s3.secret_key, sse_c.hex(), base64.b64encode(sse_c).decode(),
            base64.b64encode(md5).decode(), md5.hex()]


SESSIONS: dict[str, Callable[[Path], list[str]]] = {
    "first-sync": record_sync, "reprovision": record_reprovision, "backup-restore": record_backup,
}


def main(names: list[str]) -> None:
    for name in names or list(SESSIONS):
        SESSIONS[name](HERE / name)
        print(f"recorded {HERE / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
