"""`[daemon] mode = "restore"` against a real Radicale behind a recording proxy: server
changes reach the device, device changes are held back (no write request at all) and go out
once the mode is "both" again. Waits poll with bounded deadlines; nothing asserts speed."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.fixtures.proxy import LoopbackProxy
from tests.fixtures.radicale import DavAccount
from tests.integration.test_daemon import DAEMON, _configure, _poll, _stop, _vcard, daemon
from tests.integration.test_sync_radicale import Device, server_items

WRITES = {"PUT", "DELETE", "MKCOL", "MKCALENDAR", "PROPPATCH", "MOVE", "COPY", "POST"}


@dataclass
class ProxiedAccount:
    """The test's Radicale account, reached through the recording proxy."""

    url: str
    username: str
    password: str


def test_restore_mode_downloads_holds_device_changes_and_sends_them_in_mode_both(
    tmp_path: Path, dav_account: DavAccount
) -> None:
    with LoopbackProxy(dav_account.url) as proxy:
        device = Device(tmp_path / "d", ProxiedAccount(proxy.url, dav_account.username,  # type: ignore[arg-type]
                                                       dav_account.password))
        assert device.sync()["exit"] == 0  # paired (the collections exist), in mode "both"
        put = httpx.put(f"{dav_account.home('contacts')}contacts/bob.vcf",
                        content=_vcard("bob-1", "Bob"),
                        auth=(dav_account.username, dav_account.password),
                        headers={"Content-Type": "text/vcard"})
        assert put.status_code == 201
        (device.contacts / "ada.vcf").write_text(_vcard("ada-1", "Ada"), encoding="utf-8")
        _configure(device, DAEMON + 'mode = "restore"\n')
        restore_config = device.config.read_text(encoding="utf-8")
        paired = len(proxy.seen)
        with daemon(device, tmp_path) as (proc, notes):
            notes.wait_for(lambda line: line.startswith("STATUS=sync at"))
            _poll(lambda: "bob-1" in device.uids())
            notes.wait_for(lambda line: line.startswith("STATUS=sync at"))  # one more run
            assert "ada-1" not in server_items(dav_account, "contacts")
            in_restore = proxy.seen[paired:]
            assert in_restore, "the daemon made no request"
            assert not [r for r in in_restore if r.method in WRITES], in_restore
            status = device.run("status", "--json")
            out = json.loads(status.stdout)
            assert out["daemon"]["mode"] == "restore"
            assert out["daemon"]["mode_source"].endswith("[daemon]")
            assert out["sync"]["contacts"]["pending"] == 1
            device.config.write_text(restore_config.replace('mode = "restore"',
                                                            'mode = "both"'), encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            _poll(lambda: "ada-1" in server_items(dav_account, "contacts"))
            _stop(proc, notes)
    assert "bob-1" in device.uids() and "ada-1" in device.uids()
