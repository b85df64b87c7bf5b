"""`davsync doctor` against a real Radicale and a real SeaweedFS started by the tests: every
check ok on a working installation, and each broken piece gives its own line and exit code 1
(an unreadable config: 2). No secret appears in any output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.radicale import DavAccount
from tests.fixtures.seaweed import PASSPHRASE, BackupEnv
from tests.integration.test_sync_errors import not_dav
from tests.integration.test_sync_radicale import ROOT

__all__ = ["not_dav"]  # the fixture: a web server that is no DAV server

pytestmark = pytest.mark.usefixtures("radicale_server")


class Install:
    """A config for a Radicale account and a SeaweedFS bucket; doctor and the other commands
    run as subprocesses with their own XDG_CONFIG_HOME (no systemd unit unless a test puts
    one there)."""

    def __init__(self, root: Path, account: DavAccount, env: BackupEnv) -> None:
        self.root = root
        self.account = account
        self.env = env
        self.config = env.config_path
        self.xdg = root / "xdg"
        self.xdg.mkdir()
        self.prefix: list[str] = []
        self.write()

    def write(self, *, server: str = "", passphrase: str = PASSPHRASE,
              bucket: str | None = None, url: str | None = None,
              password: str | None = None) -> None:
        self.env.write_config(passphrase=passphrase)
        text = self.config.read_text(encoding="utf-8")
        text = text.replace('url = "http://127.0.0.1:9/"\nusername = "nobody"\n', (
            f'url = "{url or self.account.url}"\nusername = "{self.account.username}"\n'
            f'password = "{password or self.account.password}"\n{server}'))
        if bucket is not None:
            text = text.replace(f'bucket = "{self.env.bucket.name}"', f'bucket = "{bucket}"')
        self.config.write_text(text, encoding="utf-8")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "XDG_CONFIG_HOME": str(self.xdg)}
        return subprocess.run(
            [*self.prefix, sys.executable, "-m", "davsync.cli", "--config", str(self.config),
             *args],
            capture_output=True, text=True, timeout=300, cwd=ROOT, env=environ,
        )

    def doctor(self) -> tuple[int, dict[str, list[tuple[str, str]]], str]:
        """(exit code, check -> [(status, detail)], the plain output), from both forms."""
        plain = self.run("doctor")
        proc = self.run("doctor", "--json")
        assert proc.returncode == plain.returncode, (plain.stdout, proc.stdout)
        out = json.loads(proc.stdout)
        assert out["exit_code"] == proc.returncode
        checks: dict[str, list[tuple[str, str]]] = {}
        for c in out["checks"]:
            checks.setdefault(c["check"], []).append((c["status"], c["detail"]))
        for secret in (self.account.password, PASSPHRASE, self.env.bucket.server.secret_key):
            assert secret not in plain.stdout + plain.stderr + proc.stdout + proc.stderr
        assert plain.stderr == ""
        return proc.returncode, checks, plain.stdout

    def set_up(self) -> None:
        """Collections on the server (a first sync) and a backup repository (a first backup)."""
        assert self.run("sync").returncode == 0
        proc = self.run("backup")
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def install(tmp_path: Path, dav_account: DavAccount, backup_env: BackupEnv) -> Install:
    return Install(tmp_path, dav_account, backup_env)


README = (ROOT / "README.md").read_text(encoding="utf-8")


def in_readme(plain: str, check: str, *subs: tuple[str, str]) -> None:
    """The line of `check` in doctor's plain output, with this test's paths and addresses
    replaced by README's examples, is a line README quotes."""
    [line] = [line for line in plain.splitlines() if line[5:].startswith(f"{check}: ")]
    for ours, readme in subs:
        line = line.replace(ours, readme)
    assert f"\n{line}\n" in README, line


def statuses(checks: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    return {name: [status for status, _ in found] for name, found in checks.items()}


def test_a_working_installation_is_all_ok(install: Install) -> None:
    install.set_up()
    code, checks, plain = install.doctor()
    assert code == 0, plain
    assert statuses(checks) == {
        "config": ["ok"], "device contacts": ["ok"], "device calendars": ["ok"],
        "state": ["ok"], "systemd": ["note"], "daemon": ["ok"],
        "server": ["ok"], "auth": ["ok"],
        "discovery contacts": ["ok"], "collection contacts 'contacts'": ["ok"],
        "sync-collection contacts": ["ok"],
        "discovery calendars": ["ok"], "collection calendars 'personal'": ["ok"],
        "sync-collection calendars": ["ok"],
        "quirks": ["ok"],
        "backup endpoint": ["ok"], "backup bucket": ["ok"], "backup write": ["ok"],
        "backup passphrase": ["ok"], "backup network": ["ok"],
    }, plain
    user = install.account.username
    lines = plain.splitlines()
    assert f"ok   config: {install.config} loads" in lines
    assert f"ok   server: {install.account.url} answers (HTTP 207), plain http" in lines
    assert f"ok   auth: basic as {user!r}" in lines
    assert f"ok   device contacts: vdir folder {install.env.contacts}: readable, writable, " \
        "0 item(s)" in lines
    assert "ok   sync-collection contacts: supported (the server gave a sync-token): a sync " \
        "reads only changes" in lines
    assert any(line.startswith("ok   quirks: radicale 3.") and "sync_collection (supported)"
               in line for line in lines)
    assert "ok   backup passphrase: verifies against the repository's key-info (client " \
        "encryption)" in lines
    assert "ok   backup write: put and deleted a probe object under the prefix" in lines
    client = install.env.bucket.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=install.env.bucket.name)
            .get("Contents", [])]
    assert not [k for k in keys if "doctor-probe" in k]  # the probe is gone
    assert not [p for p in install.env.contacts.iterdir() if p.name.startswith(".davsync")]
    for check in ("sync-collection contacts", "backup write", "backup passphrase",
                  "backup network"):
        in_readme(plain, check)


def test_a_wrong_password_is_one_failing_auth_line(install: Install) -> None:
    install.set_up()
    install.write(password="Wr0ng-Passw0rd")
    code, checks, plain = install.doctor()
    assert code == 1
    assert checks["server"] == [("ok", f"{install.account.url} answers, plain http")]
    origin = install.account.url.rstrip("/")
    assert checks["auth"] == [("fail", (
        f"{origin} refused the credentials of user {install.account.username!r} (HTTP 401); "
        "check the username and password (or re-provision the device)"))]
    assert "collection contacts 'contacts'" not in checks  # nothing asked after a refusal
    assert checks["backup passphrase"][0][0] == "ok"  # the other groups still ran
    assert "Wr0ng-Passw0rd" not in plain
    in_readme(plain, "auth", (origin, "https://dav.example.org"),
              (repr(install.account.username), "'me'"))


def test_a_server_that_is_down_is_one_failing_line_and_doctor_does_not_hang(
    install: Install,
) -> None:
    install.write(url="http://127.0.0.1:9/")
    code, checks, plain = install.doctor()
    assert code == 1
    assert checks["server"] == [("fail", (
        "http://127.0.0.1:9: PROPFIND http://127.0.0.1:9/ failed after 1 attempt(s): "
        "ConnectError. Check the server URL and that the server is running and reachable."))]
    assert "auth" not in checks
    in_readme(plain, "server", ("http://127.0.0.1:9", "https://dav.example.org"))


def test_a_missing_collection_names_the_ones_the_account_has(install: Install) -> None:
    install.set_up()
    install.write(server='addressbook = "contcts"\n')
    code, checks, plain = install.doctor()
    assert code == 1
    assert checks["collection contacts 'contcts'"] == [("fail", (
        f"{install.config} [server] addressbook: the account has no addressbook named "
        "'contcts'; its addressbooks: 'contacts'. Did you mean 'contacts'? Correct the name, "
        "or set create = true in [server] to create 'contcts'"))]
    in_readme(plain, "collection contacts 'contcts'",
              (str(install.config), "/home/me/.config/davsync/config.toml"))
    install.write(server='addressbook = "contcts"\ncreate = true\n')
    code, checks, _plain = install.doctor()
    assert code == 0
    status, detail = checks["collection contacts 'contcts'"][0]
    assert status == "note"
    assert detail.endswith("contcts/ does not exist; the first sync creates it (create = true)")


def without_root_powers(install: Install) -> None:
    """Run doctor so that permission bits bind it: as root, in a user namespace of its own
    (`unshare --user`), where it still owns its files but has no capability over them."""
    if os.geteuid() != 0:
        return
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--user", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("running as root without `unshare --user`: root writes into any folder")
    install.prefix = ["unshare", "--user"]


def test_an_unwritable_device_folder_is_a_failing_line(install: Install) -> None:
    install.set_up()
    without_root_powers(install)
    (install.env.contacts / "keep.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:k1\r\nFN:Keep\r\nEND:VCARD\r\n")
    install.env.contacts.chmod(0o500)
    try:
        code, checks, plain = install.doctor()
        assert sorted(p.name for p in install.env.contacts.iterdir()) == ["keep.vcf"]
    finally:
        install.env.contacts.chmod(0o700)
    assert code == 1
    assert checks["device contacts"] == [("fail", (
        f"{install.env.contacts}: cannot write: Permission denied; a sync must write device "
        "changes there: give yourself write access (chmod u+w)"))]
    assert checks["device calendars"][0][0] == "ok"
    in_readme(plain, "device contacts", (str(install.env.contacts), "/home/me/.contacts"))


def test_a_wrong_passphrase_is_one_failing_line(install: Install) -> None:
    install.set_up()
    install.write(passphrase="Wr0ng-Horse-battery")
    code, checks, plain = install.doctor()
    assert code == 1
    where = f"s3 {install.env.bucket.endpoint} bucket {install.env.bucket.name!r} prefix 'laptop'"
    assert checks["backup passphrase"] == [("fail", (
        f"wrong backup passphrase for {where} (the key-info verifier does not match); check "
        "[backup] passphrase/passphrase_command"))]
    assert "Wr0ng-Horse-battery" not in plain
    in_readme(plain, "backup passphrase", (install.env.bucket.endpoint, "https://s3.example.org"),
              (repr(install.env.bucket.name), "'photos'"))


def test_a_missing_bucket_is_one_failing_line(install: Install) -> None:
    install.write(bucket="no-such-bucket-here")
    code, checks, plain = install.doctor()
    assert code == 1
    assert checks["backup endpoint"] == [("ok", f"{install.env.bucket.endpoint} answers")]
    assert checks["backup bucket"] == [("fail", (
        f"s3 {install.env.bucket.endpoint} bucket 'no-such-bucket-here' prefix 'laptop': the "
        "bucket does not exist; create it, or correct [backup] bucket (`davsync backup` "
        "creates it when the credentials allow)"))]
    assert "backup write" not in checks
    in_readme(plain, "backup bucket", (install.env.bucket.endpoint, "https://s3.example.org"),
              ("'no-such-bucket-here'", "'photos'"))


def test_an_unreadable_config_exits_2(install: Install) -> None:
    install.config.write_text("[server\n", encoding="utf-8")
    code, checks, _plain = install.doctor()
    assert code == 2
    assert [status for status, _ in checks["config"]] == ["fail"]
    assert list(checks) == ["config"]


def test_a_config_others_can_read_with_a_password_in_it_fails(install: Install) -> None:
    install.set_up()
    install.config.chmod(0o644)
    code, checks, _plain = install.doctor()
    assert code == 1
    assert checks["config"] == [
        ("ok", f"{install.config} loads"),
        ("fail", f"{install.config} holds [server] password and [backup] passphrase and "
         f"[backup] secret_key and other users can read it: run `chmod 600 {install.config}`"),
    ]


def test_an_installed_unit_is_reported(install: Install) -> None:
    install.set_up()
    unit = install.xdg / "systemd" / "user" / "davsync.service"
    unit.parent.mkdir(parents=True)
    shutil.copy(ROOT / "systemd" / "davsync.service", unit)
    code, checks, _plain = install.doctor()
    assert code == 0
    status, detail = checks["systemd"][0]
    assert status == "ok"
    assert detail.startswith(f"{unit} is installed")


def test_sse_c_is_checked_when_configured(install: Install) -> None:
    install.env.bucket.client().create_bucket(Bucket=install.env.bucket.name)
    text = install.config.read_text(encoding="utf-8")
    install.config.write_text(text.replace('encryption = "client"', 'encryption = "sse-c"'),
                              encoding="utf-8")
    _code, checks, _plain = install.doctor()
    assert checks["backup sse-c"] == [
        ("ok", "the server encrypts with the key sent and refuses reads without it")]
    assert checks["backup passphrase"][0][0] == "note"  # no backup made yet


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback listener that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_server_that_never_answers_does_not_hang_doctor(
    install: Install, silent_server: str,
) -> None:
    install.write(url=silent_server, server="read_timeout = 1\n")
    code, checks, _plain = install.doctor()
    assert code == 1
    origin = silent_server.rstrip("/")
    assert checks["server"] == [("fail", (
        f"{origin}: PROPFIND {silent_server} failed after 1 attempt(s): ReadTimeout. Check the "
        "server URL and that the server is running and reachable."))]


def test_a_credentials_file_others_can_read_fails(install: Install) -> None:
    state = install.env.state
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "credentials.json").write_text("{}", encoding="utf-8")
    (state / "credentials.json").chmod(0o644)
    code, checks, plain = install.doctor()
    assert code == 1
    path = state / "credentials.json"
    assert checks["credentials"] == [("fail", (
        f"{path}: credential file is readable or writable by group/others (mode 0644); run "
        f"`chmod 600 {path}` (and consider `davsync logout` + `davsync login` if someone else "
        "may have read it)"))]
    in_readme(plain, "credentials", (str(state), "/home/me/.local/state/davsync"))
    path.chmod(0o600)
    assert install.doctor()[1]["credentials"] == [("ok", f"{path} has mode 0600")]


def test_a_url_that_is_no_dav_server_is_a_failing_discovery_line(
    install: Install, not_dav: str,
) -> None:
    install.write(url=not_dav)
    code, checks, _plain = install.doctor()
    assert code == 1
    assert checks["server"] == [("ok", f"{not_dav} answers (HTTP 200), plain http")]
    origin = not_dav.rstrip("/")
    assert checks["discovery"] == [
        ("fail", f"{install.config} [server] url: {not_dav} does not answer as a {protocol} "
         f"server (no {kind} home at that URL, at {origin}/.well-known/{well_known} or through "
         "current-user-principal); set url to the address of your DAV server or account")
        for protocol, kind, well_known in (("CardDAV", "contacts", "carddav"),
                                           ("CalDAV", "calendars", "caldav"))]


def test_collections_of_a_kind_are_listed_and_a_listed_name_the_account_lacks_fails(
    install: Install,
) -> None:
    install.set_up()  # the account now has the addressbook "contacts"
    text = install.config.read_text(encoding="utf-8")
    parent = install.root / "books"
    listed = text.replace(f'contacts = "{install.env.contacts}"',
                          f'contacts = {{ type = "vdir", path = "{parent}", '
                          'collections = ["contacts", "famly"] }')
    assert listed != text
    install.config.write_text(listed, encoding="utf-8")
    code, checks, _plain = install.doctor()
    assert code == 1
    assert checks["collections contacts"] == [("fail", (
        f"{install.config} [device] [contacts] collections: the account has no addressbook "
        "named 'famly'; its addressbooks: 'contacts'. Correct the name, or set create = true in "
        "[server] to create 'famly'"))]
    install.config.write_text(listed.replace(', "famly"', ""), encoding="utf-8")
    code, checks, _plain = install.doctor()
    assert code == 0
    assert checks["collections contacts"] == [
        ("ok", f"1 on the account (contacts), synced under {parent}")]
    (parent / "contacts").mkdir(parents=True)
    (parent / ".hidden").mkdir()
    _code, checks, _plain = install.doctor()
    assert checks["device contacts"] == [("ok", (
        f"vdir parent folder {parent}: readable, writable, 1 collection folder(s) (contacts)"))]
