"""`davsync login`, `logout`, `whoami`: this installation's sign-in, as a user sees it.

Output names the user, the device and the server, never a password or token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from davsync.app.credentials import (
    auth_status,
    http_client,
    provisioning_authenticator,
    status_file,
)
from davsync.cli.context import AppContext, pass_app
from davsync.config import Config
from davsync.credentials.authenticator import REPROVISION_FAILED, after_logout
from davsync.credentials.device import device_name
from davsync.credentials.device_grant import DeviceGrant
from davsync.credentials.provision import ProvisioningClient, revoke_url
from davsync.credentials.store import (
    DEVICE_SLOT,
    ID_TOKEN_SLOT,
    SecretStore,
    load_device,
    open_secret_store,
    save_id_token,
)
from davsync.errors import ConfigError, UnreachableError
from davsync.runstatus import REFUSED as LOGIN_REFUSED


def _provision_config(app: AppContext, command: str) -> Config:
    config = app.config()
    if config.server.auth != "provision":
        raise ConfigError(
            f'{config.path} [server] auth: `davsync {command}` needs auth = "provision"; with '
            'auth = "basic" the account is the username and password in the config'
        )
    return config


@click.command()
@pass_app
def login(app: AppContext) -> None:
    """Sign in with the identity provider and provision this device's DAV credentials.

    With [server] assertion_command this provisions right away; otherwise it runs the OAuth
    device flow against [server] issuer: open the address it shows on any device and enter the
    code.
    """
    config = _provision_config(app, "login")
    server = config.server
    store = open_secret_store(config.state_dir)
    if not server.assertion_command:
        assert server.issuer is not None and server.client_id is not None  # config.py checks
        with http_client(server) as http:
            grant = DeviceGrant(server.issuer, server.client_id, http, show=click.echo)
            save_id_token(store, grant.run(), server.issuer)
    creds = provisioning_authenticator(config, store=store).provision()
    click.echo(
        f"Signed in as {creds.username} on device {device_name(server.device_name)!r} "
        f"({creds.device_id}); DAV server {creds.dav_url}; credentials kept in {store.describe()}"
    )


@click.command()
@pass_app
def logout(app: AppContext) -> None:
    """Ask the server to revoke this device's credentials, then delete them here.

    The local credentials are deleted even when the server cannot be reached; the command then
    says so and exits with status 3, and the device should be revoked on the server.
    """
    config = _provision_config(app, "logout")
    store = open_secret_store(config.state_dir)
    creds = load_device(store)
    problem: str | None = None
    if creds is None:
        click.echo("Not signed in on this device; nothing to revoke.")
    else:
        try:
            with http_client(config.server) as http:
                known = ProvisioningClient(creds.server, http).revoke(creds)
            click.echo(
                f"Revoked device {creds.device_id} ({creds.username}) "
                f"at {revoke_url(creds.server)}."
                if known
                else f"The server no longer knew device {creds.device_id}; nothing to revoke."
            )
        except UnreachableError as exc:
            problem = str(exc)
    _forget(store)
    status_file(config).save(after_logout(datetime.now(UTC), problem))
    if problem is not None:
        raise UnreachableError(
            f"local credentials deleted, but the server was not told: {problem}. Revoke this "
            "device on the server (`davsync server revoke`) once it is reachable"
        )
    click.echo(f"Signed out; local credentials deleted from {store.describe()}.")


def _forget(store: SecretStore) -> None:
    store.delete(DEVICE_SLOT)
    store.delete(ID_TOKEN_SLOT)


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="Print signed_in, username, device_id, server."
)
@pass_app
def whoami(app: AppContext, as_json: bool) -> None:
    """Show as whom, on which device and at which server this installation is signed in.

    Exits 0 when signed in, 1 otherwise.
    """
    status = auth_status(app.config())
    if as_json:
        keys = ("signed_in", "username", "device_id", "server")
        click.echo(json.dumps({k: status[k] for k in keys}))
    else:
        click.echo(_describe(status))
    click.get_current_context().exit(0 if status["signed_in"] else 1)


def _describe(status: dict[str, object]) -> str:
    refused = (f"The server refused this login at {status['when']}: {status['reason']}. "
               "The next sync that gets through clears this.")
    if status["mode"] == "basic":
        using = f"Using basic auth as {status['username']} at {status['server']}."
        return f"{using}\n{refused}" if status["state"] == LOGIN_REFUSED else using
    lines = []
    if status["signed_in"]:
        lines.append(
            f"Signed in as {status['username']} (device {status['device_id']}) "
            f"at {status['server']}."
        )
    else:
        lines.append(f"Not signed in (provisioning server {status['provision_url']}).")
    if status["state"] == REPROVISION_FAILED:
        lines.append(
            f"Provisioning failed at {status['when']}: {status['reason']}. "
            f"Next automatic attempt after {status['next_attempt_after']}."
        )
    elif status["state"] == LOGIN_REFUSED:
        lines.append(refused)
    elif status.get("login_required") and not status["signed_in"]:
        lines.append("Run `davsync login` to sign in.")
    return "\n".join(lines)
