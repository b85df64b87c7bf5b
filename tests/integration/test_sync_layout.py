"""Switching one collection between the single form of `[device]` and `collections = ...`
against a real Radicale: the folder moves, nothing is deleted anywhere, and the user is told."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures.radicale import DavAccount
from tests.integration.test_sync_collections import Account, files, vcard

ROOT = Path(__file__).resolve().parents[2]


class Switching:
    """A device whose config names the addressbook "family" either way."""

    def __init__(self, root: Path, dav: DavAccount) -> None:
        self.root, self.dav = root, dav
        self.config = root / "config.toml"
        self.parent = root / "contacts"
        root.mkdir(parents=True)

    def single(self, path: Path) -> None:
        self._write('addressbook = "family"\n', f'contacts = "{path}"\n')

    def collections(self) -> None:
        self._write("", f'contacts = {{ type = "vdir", path = "{self.parent}", '
                        'collections = ["family"] }\n')

    def _write(self, server: str, device: str) -> None:
        self.config.write_text(
            f'[server]\nurl = "{self.dav.url}"\nusername = "{self.dav.username}"\n'
            f'password = "{self.dav.password}"\n{server}[device]\n{device}'
            f'[state]\ndir = "{self.root / "state"}"\n', encoding="utf-8")
        self.config.chmod(0o600)

    def sync(self) -> tuple[dict, str]:  # type: ignore[type-arg]
        """The family collection's report and what the run printed on stderr."""
        proc = subprocess.run(
            [sys.executable, "-m", "davsync.cli", "--config", str(self.config), "sync",
             "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        (report,) = json.loads(proc.stdout)["collections"].values()
        assert not report["errors"] and not report["deleted_remote"], report
        assert not report["deleted_local"], report
        return report, proc.stderr


def _cards(folder: Path) -> set[str]:
    return {name for name in files(folder) if name.endswith(".vcf")}


def _setup(tmp_path: Path, dav_account: DavAccount) -> tuple[Switching, Account, Path]:
    account = Account(dav_account)
    account.addressbook("family", "Family")
    for n in range(3):
        account.put("family", f"f{n}.vcf", vcard(f"f{n}", f"family {n}"))
    device = Switching(tmp_path / "d", dav_account)
    single = tmp_path / "d" / "single"
    device.single(single)
    assert device.sync()[0]["downloaded"] == 3
    return device, account, single


def _note(path: Path, before: str) -> str:
    return (f"{path}: this addressbook was synced with {before} until the [device] contacts "
            f"layout changed; it is now synced with {path}: what the server has is downloaded "
            "into it and what it holds is uploaded, nothing is deleted on either side. "
            f"If {before} is another folder, it is no longer synced: remove it once {path} "
            "holds what you expect")


def test_switching_to_collections_without_moving_downloads_into_the_new_folder(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    device, account, single = _setup(tmp_path, dav_account)
    before = files(single)
    device.collections()
    report, stderr = device.sync()
    new = device.parent / "family"
    assert report["downloaded"] == 3 and report["uploaded"] == 0
    assert _note(new, str(single)) in stderr, stderr
    assert _cards(new) == _cards(single) and files(single) == before  # the old store kept
    assert account.items("family") == {"f0", "f1", "f2"}
    report, stderr = device.sync()  # settled: nothing moves, nothing said
    assert report["downloaded"] == report["uploaded"] == 0 and "layout" not in stderr
    account.close()


def test_switching_to_collections_after_moving_the_folder_moves_nothing(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    device, account, single = _setup(tmp_path, dav_account)
    device.parent.mkdir()
    shutil.move(single, device.parent / "family")
    new = device.parent / "family"
    (new / "added.vcf").write_bytes(vcard("added", "added on the device"))
    device.collections()
    report, stderr = device.sync()
    assert report["downloaded"] == 0 and report["uploaded"] == 1
    assert _note(new, str(single)) in stderr, stderr
    assert account.items("family") == {"f0", "f1", "f2", "added"}
    assert len(_cards(new)) == 4
    account.close()


def test_switching_back_to_the_single_form_deletes_nothing(
    tmp_path: Path, dav_account: DavAccount,
) -> None:
    device, account, _ = _setup(tmp_path, dav_account)
    device.collections()
    device.sync()
    back = tmp_path / "d" / "back"
    device.single(back)
    report, stderr = device.sync()
    assert report["downloaded"] == 3
    assert _note(back, "the folder 'family' under its former `collections` parent folder") \
        in stderr
    assert account.items("family") == {"f0", "f1", "f2"}
    assert len(_cards(device.parent / "family")) == 3 and len(_cards(back)) == 3
    report, stderr = device.sync()
    assert report["downloaded"] == report["uploaded"] == 0 and "layout" not in stderr
    account.close()
