"""The auth plugin inside a plain `python -m radicale`, as `[auth] type = davsync.server...`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from davsync.server.store import CredentialStore
from tests.fixtures.ports import free_port, wait_listening


def test_plain_radicale_with_the_plugin(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.sqlite3")
    user, password = store.provision("https://i.example", "sub", "dev1", "Laptop")
    port = free_port()
    config = tmp_path / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        "[auth]\ntype = davsync.server.radicale_auth\ndelay = 0\n"
        f"[storage]\nfilesystem_folder = {tmp_path / 'collections'}\n"
        "[rights]\ntype = owner_only\n[web]\ntype = none\n"
    )
    with (tmp_path / "radicale.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc=proc)
        url = f"http://127.0.0.1:{port}/"

        def status(auth: tuple[str, str]) -> int:
            return httpx.request("PROPFIND", url, headers={"Depth": "0"}, auth=auth,
                                 timeout=30).status_code

        assert status((user, password.reveal())) == 207
        assert status((user, "wrong")) == 401
        store.revoke(user, "dev1")  # another process, as `davsync server revoke` would
        assert status((user, password.reveal())) == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        store.close()
