"""Revoke vs block: a blocked device (or account) cannot provision again until unblocked.

A real davsync client installation (the `install` fixture) syncs against the real server; the
admin blocks with the CLI, as in production.
"""

from __future__ import annotations

from davsync.credentials.store import load_device
from davsync.errors import EXIT_UNREACHABLE
from tests.fixtures.davsync_server import DavsyncServer, new_subject
from tests.integration.test_cred_provision import Installation, install
from tests.integration.test_cred_sync import _server_uids, _sync, _vcard, _with_contacts

__all__ = ["install"]  # the fixture, shared with the provisioning tests


def test_blocked_device_exits_3_keeps_its_changes_and_syncs_once_unblocked(
    install: Installation, davsync_server: DavsyncServer
) -> None:
    contacts = _with_contacts(install, 2)
    assert install.run("login").exit_code == 0
    assert _sync(install)[0] == 0
    device = load_device(install.store)
    assert device is not None
    blocked = davsync_server.cli("revoke", "--block", device.username, device.device_id)
    assert f"blocked device {device.device_id} of {device.username}" in blocked.stdout
    table = davsync_server.cli("devices", device.username).stdout.splitlines()
    assert table[1].startswith(device.device_id) and table[1].endswith(" blocked")
    (contacts / "c2.vcf").write_text(_vcard("c2", "Person 2"), encoding="utf-8")

    refused = install.run("sync")
    assert refused.exit_code == EXIT_UNREACHABLE
    assert ("the server's administrator has blocked this device; ask them to unblock it "
            "(local changes are kept)") in refused.output
    assert refused.output.count("blocked this device") == 1
    assert install.provisions() == 2  # the login, then one refused attempt
    assert (f"refused provisioning for device {device.device_id!r} of {device.username}: "
            "blocked by the admin") in davsync_server.log_text()

    davsync_server.cli("unblock", device.username, device.device_id)
    code, healed = _sync(install)
    assert code == 0, healed
    assert _server_uids(install) == {"c0", "c1", "c2"}


def test_blocked_account_refuses_devices_and_app_passwords_until_unblocked(
    install: Installation, davsync_server: DavsyncServer
) -> None:
    _with_contacts(install, 1)
    assert install.run("login").exit_code == 0
    device = load_device(install.store)
    assert device is not None
    app = davsync_server.app_password(device.username, "DAVx5")
    davsync_server.cli("block", device.username)

    refused = install.run("sync")
    assert refused.exit_code == EXIT_UNREACHABLE
    assert "has blocked this account" in refused.output
    new_app = davsync_server.cli("app-password", device.username, check=False)
    assert new_app.returncode == 1
    assert f"`davsync server unblock {device.username}` first" in new_app.stderr
    accounts = davsync_server.cli("accounts").stdout
    assert any(device.username in line and "BLOCKED" in line for line in accounts.splitlines())
    assert all(d["revoked"] for d in davsync_server.devices(device.username))

    davsync_server.cli("unblock", device.username)
    code, healed = _sync(install)
    assert code == 0, healed
    revoked = {d["device_id"]: d["revoked"] for d in davsync_server.devices(device.username)}
    assert revoked[app.id] is not None  # the block's revocations stay: make a new app password


def test_block_and_unblock_name_what_is_missing(davsync_server: DavsyncServer) -> None:
    result = davsync_server.cli("block", "nobody", check=False)
    assert result.returncode == 1 and "no account 'nobody'" in result.stderr
    device = davsync_server.provision(new_subject())
    result = davsync_server.cli("block", device.username, "nope", check=False)
    assert result.returncode == 1 and "has no device 'nope'" in result.stderr
    result = davsync_server.cli("unblock", device.username, check=False)
    assert result.returncode == 1 and "is not blocked" in result.stderr
