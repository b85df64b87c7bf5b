"""`make demo`: the whole product on throw-away local servers and the shipped sample data.

1. a local Radicale with a throw-away account; two devices (a laptop with the samples, and an
   empty phone) sync through it; one item changes on each side; they sync again; then the
   daemon (`davsync run`) runs on the laptop for a few seconds, pushes a new contact, and
   `davsync status` is shown;
2. further parts (provisioning, backup) run when their pieces are installed.
Everything lives under ./demo-run, which is recreated on each run.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from davsync.app.sync import run_sync
from davsync.config import Config, load_config
from davsync.core.item import parse_item
from davsync.devtools.radicale_local import start_radicale
from davsync.sync.values import SyncResult

SAMPLES = Path(__file__).resolve().parent / "samples"  # package data: ships in the wheel
_CLI = [sys.executable, "-m", "davsync.cli"]  # a davsync command in this interpreter


def say(text: str = "") -> None:
    print(text, flush=True)


def write_config(path: Path, url: str, user: str, password: str, device: Path) -> Path:
    path.write_text(
        f'[server]\nurl = "{url}"\nusername = "{user}"\npassword = "{password}"\n'
        'addressbook = "contacts"\ncalendar = "personal"\n\n'
        f'[device]\ncontacts = "{device / "contacts"}"\ncalendars = "{device / "calendars"}"\n\n'
        f'[state]\ndir = "{device / "state"}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def summary(label: str, result: SyncResult) -> None:
    parts = []
    for name, report in result.collections.items():
        counts = {k: v for k, v in report.as_json().items() if k != "errors" and v}
        text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) or "no change"
        parts.append(f"{name}: {text}" + (f", {len(report.errors)} errors" if report.errors
                                          else ""))
    say(f"  {label:<28} {'; '.join(parts)}  [{result.http_requests} HTTP requests]")
    if result.fatal is not None:
        raise SystemExit(f"demo failed: {result.fatal}")
    for report in result.collections.values():
        for err in report.errors:
            say(f"    ! {err['item']}: {err['reason']}")


def items(folder: Path, kind: str) -> dict[str, str]:
    out = {}
    for path in folder.iterdir():
        if path.suffix in (".vcf", ".ics"):
            item = parse_item(path.read_bytes(), kind)  # type: ignore[arg-type]
            out[item.uid or path.name] = item.hash
    return out


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise SystemExit(f"demo failed: {old!r} not found in {path}")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def sync_demo(work: Path) -> None:
    say("== 1. Two-way sync with a local Radicale (CardDAV + CalDAV) ==")
    server = start_radicale(work / "radicale")
    try:
        password = secrets.token_urlsafe(12)
        server.add_user("demo", password)
        say(f"  Radicale on {server.url} (account 'demo', collections in {server.storage})")
        laptop, phone = work / "laptop", work / "phone"
        shutil.copytree(SAMPLES / "contacts", laptop / "contacts")
        shutil.copytree(SAMPLES / "calendars", laptop / "calendars")
        (phone / "contacts").mkdir(parents=True)
        (phone / "calendars").mkdir(parents=True)
        conf_l = load_config(write_config(work / "laptop.toml", server.url, "demo", password,
                                          laptop))
        conf_p = load_config(write_config(work / "phone.toml", server.url, "demo", password,
                                          phone))
        n_cards = len(list((laptop / "contacts").glob("*.vcf")))
        n_events = len(list((laptop / "calendars").glob("*.ics")))
        say(f"  laptop holds {n_cards} contacts and {n_events} events/tasks; phone is empty")
        summary("laptop: first sync", run_sync(conf_l))
        summary("phone: first sync", run_sync(conf_p))
        summary("laptop: nothing changed", run_sync(conf_l))

        card = sorted((laptop / "contacts").glob("*.vcf"))[0]
        replace_in(card, "END:VCARD", "NOTE:Changed on the laptop\r\nEND:VCARD")
        event = sorted((phone / "calendars").glob("*.ics"))[0]
        replace_in(event, "SUMMARY:", "SUMMARY:[moved on the phone] ")
        say(f"  edited {card.name} on the laptop and {event.name} on the phone")
        summary("laptop: sync", run_sync(conf_l))
        summary("phone: sync", run_sync(conf_p))
        summary("laptop: sync", run_sync(conf_l))

        for kind in ("contacts", "calendars"):
            if items(laptop / kind, kind) != items(phone / kind, kind):
                raise SystemExit(f"demo failed: laptop and phone {kind} differ")
        say("  laptop and phone agree on every contact and event.")
        say(f"  Look at: {laptop}, {phone} (vdirs), {work / 'laptop.toml'} (config),")
        say(f"           {laptop / 'state' / 'state.sqlite'} (sync state)")
        say()
        daemon_demo(work, laptop, conf_p)
    finally:
        server.stop()


def daemon_demo(work: Path, laptop: Path, conf_phone: Config) -> None:
    """`davsync run` on the laptop for a few seconds: a new contact is seen and pushed by
    the daemon, `davsync status` is shown while it runs, then SIGTERM stops it."""
    import json
    import signal
    import subprocess
    import time

    say("== 1b. The daemon: davsync run keeps the laptop synced ==")
    config = work / "laptop-daemon.toml"
    config.write_text((work / "laptop.toml").read_text(encoding="utf-8")
                      + "\n[daemon]\nsync_interval = 60\njitter = 0\n", encoding="utf-8")
    config.chmod(0o600)
    cli = [sys.executable, "-m", "davsync.cli", "--config", str(config)]
    with (work / "daemon.log").open("wb") as log:
        proc = subprocess.Popen([*cli, "run"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def status() -> dict[str, Any]:
            answer = subprocess.run([*cli, "status", "--json"], capture_output=True, text=True)
            data: dict[str, Any] = json.loads(answer.stdout)
            return data

        def wait(what: str, done: Callable[[dict[str, Any]], bool]) -> None:
            deadline = time.monotonic() + 60
            while not done(status()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"demo failed: the daemon did not {what} (see "
                                     f"{work / 'daemon.log'})")
                time.sleep(0.3)

        wait("start", lambda s: (s["daemon"].get("sync_runs") or 0) >= 1)
        say(f"  davsync run started (pid {proc.pid}); adding a contact on the laptop")
        card = laptop / "contacts" / "daemon-demo.vcf"
        staged = work / card.name
        staged.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:daemon-demo\r\n"
                          "FN:Dana Daemon\r\nN:Daemon;Dana;;;\r\nEND:VCARD\r\n",
                          encoding="utf-8")
        staged.replace(card)
        wait("push the new contact", lambda s: (s["sync"].get("contacts", {}).get(
            "last_result") or {}).get("uploaded", 0) >= 1)
        say("  the daemon saw the change and pushed it; `davsync status` says:")
        shown = subprocess.run([*cli, "status"], capture_output=True, text=True)
        for line in shown.stdout.splitlines():
            say(f"    {line}")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    say(f"  SIGTERM: the daemon exited {code}")
    if code != 0:
        raise SystemExit(f"demo failed: the daemon exited {code} (see {work / 'daemon.log'})")
    summary("phone: sync", run_sync(conf_phone))
    if "daemon-demo" not in items(conf_phone.device.contacts or work, "contacts"):
        raise SystemExit("demo failed: the phone did not get the daemon's contact")
    say("  the phone has the contact the daemon pushed.")


def provision_demo(work: Path) -> None:
    """Development issuer -> ID token -> device password -> sync; then a revocation heals."""
    import os

    from davsync.devtools.net import wait_listening
    from davsync.server.devissuer import DevIssuer

    say("== 2. Device credentials from an identity provider (davsync server + dev issuer) ==")
    os.environ["DAVSYNC_KEYRING"] = "0"  # the demo keeps its credentials in its own folder
    root = work / "provisioned"
    root.mkdir()
    with DevIssuer() as issuer:
        server_toml, port, proc = _start_server(root, issuer.url)
        try:
            wait_listening(port, proc=proc)
            say(f"  dev issuer {issuer.url}; davsync server (Radicale + provisioning) on "
                f"http://127.0.0.1:{port}/")
            config = _tablet_config(root, port, issuer.url)
            _revocation_heals(config, server_toml, root / "tablet")
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _start_server(root: Path, issuer_url: str) -> tuple[Path, int, subprocess.Popen[bytes]]:
    """`davsync server` trusting the dev issuer, on a free port, logging to server.log."""
    from davsync.devtools.net import free_port

    port = free_port()
    server_toml = root / "server.toml"
    server_toml.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{root / "server-data"}"\n\n'
        f'[[issuers]]\nissuer = "{issuer_url}"\nclient_id = "davsync-demo"\n',
        encoding="utf-8",
    )
    with (root / "server.log").open("wb") as log:
        proc = subprocess.Popen([*_CLI, "--config", str(server_toml), "server"],
                                stdout=log, stderr=subprocess.STDOUT)
    return server_toml, port, proc


def _tablet_config(root: Path, port: int, issuer_url: str) -> Config:
    """A tablet with the sample contacts that signs in with a dev token (auth = provision)."""
    import json
    import shlex

    device = root / "tablet"
    shutil.copytree(SAMPLES / "contacts", device / "contacts")
    (device / "calendars").mkdir()
    token_cmd = shlex.join([*_CLI, "server", "dev-token", "--issuer", issuer_url,
                            "--audience", "davsync-demo", "alice@example.org"])
    config_path = root / "tablet.toml"
    config_path.write_text(
        '[server]\nauth = "provision"\n'
        f'provision_url = "http://127.0.0.1:{port}/.well-known/davsync/provision"\n'
        f"assertion_command = {json.dumps(token_cmd)}\n"
        'device_name = "demo-tablet"\n\n'
        f'[device]\ncontacts = "{device / "contacts"}"\n'
        f'calendars = "{device / "calendars"}"\n\n[state]\ndir = "{device / "state"}"\n',
        encoding="utf-8",
    )
    return load_config(config_path)


def _revocation_heals(config: Config, server_toml: Path, device: Path) -> None:
    """First sync provisions the tablet; the admin revokes it; the next sync re-provisions."""
    from davsync.app.credentials import auth_status

    summary("tablet: first sync", run_sync(config))
    status = auth_status(config)
    say(f"  signed in as {status['username']} on {status['server']}, "
        f"device {status['device_id']}")
    creds = device / "state" / "credentials.json"
    if creds.exists():
        say(f"  device password stored in {creds} (mode {creds.stat().st_mode & 0o777:o})")
    subprocess.run([*_CLI, "--config", str(server_toml), "server", "revoke",
                    str(status["username"]), str(status["device_id"])], check=True,
                   capture_output=True)
    say("  the server admin revoked this device; the tablet edits a contact and syncs:")
    card = sorted((device / "contacts").glob("*.vcf"))[1]
    replace_in(card, "END:VCARD", "NOTE:Edited on the tablet\r\nEND:VCARD")
    summary("tablet: sync after revocation", run_sync(config))
    after = auth_status(config)
    say(f"  got 401, re-provisioned once by itself: state {after.get('state')}, "
        f"device {after['device_id']}")


def backup_demo(work: Path) -> None:
    """Back up the sample media and the laptop's vdirs to a local S3, then restore and compare."""
    import filecmp
    import json
    import subprocess

    from davsync.devtools.seaweed_local import start_local_s3, weed_binary

    say("== 3. Encrypted backup to S3 and restore (SeaweedFS on loopback) ==")
    try:
        weed_binary()
    except RuntimeError as exc:
        say(f"  skipped: {exc}")
        return
    s3 = start_local_s3(work / "s3")
    try:
        media = work / "laptop" / "media"
        shutil.copytree(SAMPLES / "media", media)
        passphrase = "Demo-" + secrets.token_urlsafe(12) + "7!"
        config = work / "laptop-backup.toml"
        config.write_text(
            (work / "laptop.toml").read_text(encoding="utf-8") + "\n[backup]\n"
            f'endpoint = "{s3.endpoint}"\nbucket = "davsync-demo"\nprefix = "laptop"\n'
            f'access_key = "{s3.access_key}"\nsecret_key = "{s3.secret_key}"\n'
            f'encryption = "client"\npassphrase = "{passphrase}"\n'
            f'images = ["{media / "Pictures"}"]\nvideos = ["{media / "Videos"}"]\n'
            f'documents = ["{media / "Documents"}"]\n',
            encoding="utf-8",
        )
        config.chmod(0o600)
        say(f"  S3 endpoint {s3.endpoint}, bucket davsync-demo, client-side encryption")
        cli = [sys.executable, "-m", "davsync.cli", "--config", str(config)]
        for label in ("first backup", "second backup (nothing changed)"):
            proc = subprocess.run([*cli, "backup", "--quiet"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"demo failed: backup exited {proc.returncode}: {proc.stderr}")
            status = json.loads(subprocess.run([*cli, "status", "--json"], capture_output=True,
                                               text=True, check=True).stdout)["backup"]
            run = status["backup"]
            say(f"  {label}: {run.get('succeeded_files')}/{run.get('total_files')} files "
                f"(media, contacts, calendars), {run.get('failed_files')} failed, "
                f"{run.get('bytes_processed')} bytes sent")
        restored = work / "restored"
        proc = subprocess.run([*cli, "restore", "--to", str(restored), "--quiet"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"demo failed: restore exited {proc.returncode}: {proc.stderr}")
        files = [p for p in media.rglob("*") if p.is_file()]
        same = [p for p in files if any(filecmp.cmp(p, q, shallow=False)
                                        for q in restored.rglob(p.name))]
        say(f"  restored into {restored}: {len(same)} of {len(files)} media files byte-identical")
        if len(same) != len(files):
            raise SystemExit("demo failed: restored files differ from the originals")
    finally:
        s3.stop()


def main() -> int:
    work = Path.cwd() / "demo-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    parts: list[Callable[[Path], None]] = [sync_demo, provision_demo, backup_demo]
    for part in parts:
        part(work)
        say()
    say(f"Demo finished. Everything it made is under {work}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
