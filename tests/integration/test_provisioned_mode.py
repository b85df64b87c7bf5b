"""The daemon mode set by the provisioning server (`davsync server mode`) overrides
`[daemon] mode` once the device has provisioned, and `status` says who set it. Against a real
`davsync server` subprocess and its dev issuer."""

from __future__ import annotations

import json

from davsync.credentials.store import load_device
from tests.fixtures.davsync_server import DavsyncServer
from tests.integration.test_cred_provision import Installation, install  # noqa: F401


def _daemon_status(inst: Installation) -> dict[str, object]:
    result = inst.run("status", "--json")
    daemon: dict[str, object] = json.loads(result.output)["daemon"]
    return daemon


def test_the_provisioned_mode_overrides_the_config_until_the_admin_resets_it(
    install: Installation, davsync_server: DavsyncServer  # noqa: F811
) -> None:
    assert install.run("login").exit_code == 0
    creds = load_device(install.store)
    assert creds is not None and creds.mode is None  # no mode set: the answer has none
    before = _daemon_status(install)
    assert before["mode"] == "both" and str(before["mode_source"]).endswith("[daemon]")
    assert before["running"] is False

    said = davsync_server.cli("mode", creds.username, "restore").stdout
    assert said == f"{creds.username}: mode restore; each device applies it at its next " \
        "provisioning\n"
    assert davsync_server.cli("mode", creds.username).stdout == \
        f"{creds.username}: mode restore\n"
    assert install.run("login").exit_code == 0  # provisions again
    after = _daemon_status(install)
    assert after == {"running": False, "mode": "restore",
                     "mode_source": "the provisioning server", "jobs": {}}
    plain = install.run("status").output
    assert "daemon: not running; mode restore (set by the provisioning server)" in plain

    davsync_server.cli("mode", creds.username, "default")
    assert install.run("login").exit_code == 0
    assert _daemon_status(install)["mode"] == "both"


def test_mode_of_an_unknown_account_is_an_error(davsync_server: DavsyncServer) -> None:
    result = davsync_server.cli("mode", "nobody", "restore", check=False)
    assert result.returncode != 0
    assert "no account 'nobody'" in result.stderr
