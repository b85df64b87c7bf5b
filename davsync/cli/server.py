"""`davsync --config server.toml server ...`: run the server, and administer its accounts.

The server file has its own schema (davsync/server/settings.py), so these commands never load
the client config.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from davsync.cli.context import need_server_extra
from davsync.config.schema import DaemonMode
from davsync.errors import DavsyncError
from davsync.fsutil import write_atomic
from davsync.server.protocol import DEFAULT_APP_LABEL
from davsync.server.settings import ServerSettings, load_server_settings
from davsync.server.store import Blocked, CredentialStore


def _settings(ctx: click.Context) -> ServerSettings:
    root = ctx.find_root().obj
    return load_server_settings(getattr(root, "config_path", None))


def _verbose(ctx: click.Context) -> int:
    return int(getattr(ctx.find_root().obj, "verbose", 0) or 0)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


@click.group(invoke_without_command=True)
@click.pass_context
def server(ctx: click.Context) -> None:
    """Run the self-hosted server: Radicale plus the provisioning endpoint.

    Without a subcommand it serves in the foreground until SIGTERM or Ctrl-C.
    """
    need_server_extra("davsync server")
    if ctx.invoked_subcommand is not None:
        return
    from davsync.app.logsetup import configure_logging
    from davsync.server.serve import radicale_log_level, run

    settings = _settings(ctx)
    verbose = _verbose(ctx)
    # The shared set-up (journal lines under systemd, secrets redacted from every record);
    # any -v shows the server's debug lines, as `log_level = "debug"` would.
    configure_logging(2 if verbose else 0, level=settings.log_level, timestamps=True)
    logging.getLogger("radicale").setLevel(radicale_log_level(settings.log_level, verbose))
    run(settings)


def _store(settings: ServerSettings) -> CredentialStore:
    if not settings.credentials_db.exists():
        raise DavsyncError(
            f"no credential store at {settings.credentials_db}: has `davsync server` run with "
            f"data_dir = {str(settings.data_dir)!r}?"
        )
    return CredentialStore(settings.credentials_db)


@server.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def accounts(ctx: click.Context, as_json: bool) -> None:
    """List accounts: username, issuer, subject, last e-mail seen, active devices."""
    store = _store(_settings(ctx))
    rows = store.accounts()
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    for r in rows:
        blocked = f"  BLOCKED {_when(r.blocked)}" if r.blocked else ""
        click.echo(f"{r.username}  {r.active_devices} devices  {r.iss}  sub={r.sub}"
                   f"  {r.email or '-'}  created {_when(r.created)}{blocked}")


@server.command()
@click.argument("user")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def devices(ctx: click.Context, user: str, as_json: bool) -> None:
    """List USER's devices and app passwords (ids app-...): id, name, created, last used,
    revoked (and blocked)."""
    store = _store(_settings(ctx))
    if not store.has_account(user):
        raise DavsyncError(f"no account {user!r} (see `davsync server accounts`)")
    rows = store.devices(user)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    header = ("DEVICE", "NAME", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [
        (d.device_id, d.name, _when(d.created), _when(d.last_used),
         _when(d.revoked) + (" blocked" if d.blocked else ""))
        for d in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@server.command()
@click.argument("user")
@click.argument("device")
@click.option("--block", is_flag=True,
              help="Also refuse any further provisioning of DEVICE (until `unblock`).")
@click.pass_context
def revoke(ctx: click.Context, user: str, device: str, block: bool) -> None:
    """Revoke USER's DEVICE (or app password): its password fails from the server's next
    request on. A davsync device then provisions a new one with a fresh sign-in, unless
    --block."""
    store = _store(_settings(ctx))
    if block:
        _block(store, user, device)
        return
    if not store.revoke(user, device):
        raise DavsyncError(
            f"user {user!r} has no active device {device!r} (see `davsync server devices {user}`)"
        )
    click.echo(f"revoked device {device} of {user}")


def _block(store: CredentialStore, user: str, device: str | None) -> None:
    if not store.block(user, device):
        raise DavsyncError(_not_found(user, device))
    if device is None:
        click.echo(f"blocked account {user}: every device and app password revoked, no new "
                   f"ones until `davsync server unblock {user}`")
    else:
        click.echo(f"blocked device {device} of {user}: revoked, and it may not provision "
                   f"again until `davsync server unblock {user} {device}`")


def _not_found(user: str, device: str | None) -> str:
    if device is None:
        return f"no account {user!r} (see `davsync server accounts`)"
    return f"user {user!r} has no device {device!r} (see `davsync server devices {user}`)"


@server.command()
@click.argument("user")
@click.argument("device", required=False)
@click.pass_context
def block(ctx: click.Context, user: str, device: str | None) -> None:
    """Revoke USER's DEVICE and refuse its provisioning; without DEVICE, the whole account:
    every device and app password is revoked and no new ones are given out."""
    _block(_store(_settings(ctx)), user, device)


@server.command()
@click.argument("user")
@click.argument("device", required=False)
@click.pass_context
def unblock(ctx: click.Context, user: str, device: str | None) -> None:
    """Lift a block: USER's DEVICE (or, without DEVICE, the account) may provision again."""
    store = _store(_settings(ctx))
    if not store.unblock(user, device):
        what = f"device {device!r} of {user!r}" if device else f"account {user!r}"
        raise DavsyncError(f"{what} is not blocked (see `davsync server devices {user}`)")
    what = f"device {device} of {user}" if device else f"account {user}"
    click.echo(f"unblocked {what}: it may provision again")


@server.command()
@click.argument("user")
@click.argument("mode", required=False,
                type=click.Choice([*(m.value for m in DaemonMode), "default"]))
@click.pass_context
def mode(ctx: click.Context, user: str, mode: str | None) -> None:
    """Set the daemon mode USER's devices are told when they provision (restore: download
    only, never upload); "default" leaves it to each device's [daemon] mode. Without MODE,
    show it. A device learns a new mode when it provisions again (e.g. after `revoke`)."""
    store = _store(_settings(ctx))
    if mode is None:
        if not store.has_account(user):
            raise DavsyncError(_not_found(user, None))
        click.echo(f"{user}: mode {store.mode_of(user) or 'default (the device config)'}")
        return
    if not store.set_mode(user, None if mode == "default" else mode):
        raise DavsyncError(_not_found(user, None))
    click.echo(f"{user}: mode {mode}; each device applies it at its next provisioning")


@server.command("app-password")
@click.argument("user")
@click.option("--label", default=DEFAULT_APP_LABEL, show_default=True,
              help='Which client it is for, e.g. "Pixel DAVx5".')
@click.option("--create", is_flag=True,
              help="Create USER as a local account (app passwords only) if it does not exist.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def app_password(ctx: click.Context, user: str, label: str, create: bool, as_json: bool) -> None:
    """Print a new app password for USER, for a CardDAV/CalDAV client such as DAVx5 or
    Thunderbird. It is shown once (only its hash is kept); revoke it like a device."""
    from davsync.server.accounts import check_username
    from davsync.server.protocol import ProtocolError, check_name
    from davsync.server.store import NoAccount

    settings = _settings(ctx)
    try:
        label = check_name(label, "--label")
        if create:
            check_username(user)
    except (ProtocolError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    store = _store(settings)
    if create and store.create_local_account(user):
        click.echo(f"created local account {user}", err=True)
    try:
        app_id, password = store.add_app_password(user, label)
    except NoAccount as exc:
        raise DavsyncError(f"{exc}; add --create to make a local account") from None
    except Blocked as exc:
        raise DavsyncError(f"{exc}: `davsync server unblock {user}` first") from None
    url = settings.public_url or _local_url(settings)
    if as_json:
        click.echo(json.dumps({"username": user, "password": password.reveal(), "dav_url": url,
                               "id": app_id, "label": label}))
        return
    click.echo(f"App password {app_id} ({label}) for {user}; shown only this once:\n"
               f"  server:   {url}\n  username: {user}\n  password: {password.reveal()}\n"
               f"Revoke it with `davsync server revoke {user} {app_id}`.")


def _local_url(settings: ServerSettings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{settings.scheme}://{host}:{settings.port}/"


@server.command("delete-account")
@click.argument("user")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete_account_command(ctx: click.Context, user: str, yes: bool) -> None:
    """Delete USER's collections (contacts, calendars) and all its device credentials."""
    import radicale.storage

    from davsync.server.accounts import delete_account
    from davsync.server.app import radicale_configuration

    settings = _settings(ctx)
    store = _store(settings)
    if not yes:
        click.confirm(f"Delete all contacts, calendars and devices of {user}?", abort=True)
    storage = radicale.storage.load(radicale_configuration(settings))
    try:
        found = delete_account(store, storage, settings.collections_dir, user)
    except ValueError as exc:
        raise DavsyncError(str(exc)) from None
    if not found:
        raise DavsyncError(f"no account {user!r} (see `davsync server accounts`)")
    click.echo(f"deleted account {user}")


@server.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Collections and credentials (default: /var/lib/davsync-server for a config "
                   "under /etc, else `data` beside the config).")
@click.option("--listen", default="127.0.0.1:5232", show_default=True,
              help="host:port for the starter config.")
@click.option("--unit", "unit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the systemd system unit here, with this installation's paths.")
@click.pass_context
def init(ctx: click.Context, data_dir: Path | None, listen: str, unit_path: Path | None) -> None:
    """Create the config folder and a starter config (loopback, safe defaults), the storage
    folders and the credential store. An existing config is kept and used."""
    from davsync.server.unit import DEFAULT_DATA_DIR, render_unit, starter_config

    config_path = getattr(ctx.find_root().obj, "config_path", None)
    if config_path is None:
        raise click.UsageError("name the config to create: davsync --config server.toml "
                               "server init")
    config_path = Path(os.path.abspath(config_path))
    if config_path.exists():
        click.echo(f"kept the existing config {config_path}")
    else:
        if data_dir is None:
            under_etc = config_path.is_relative_to("/etc")
            data_dir = Path(DEFAULT_DATA_DIR) if under_etc else config_path.parent / "data"
        config_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        _create(config_path, starter_config(Path(os.path.abspath(data_dir)), listen), 0o644)
        click.echo(f"wrote the starter config {config_path} (loopback only, no issuers yet)")
    settings = load_server_settings(config_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.collections_dir.mkdir(exist_ok=True, mode=0o700)
    (settings.collections_dir / "collection-root").mkdir(exist_ok=True, mode=0o700)
    CredentialStore(settings.credentials_db).close()
    click.echo(f"storage ready in {settings.data_dir}")
    if unit_path is not None:
        _create(unit_path, render_unit(_davsync_executable(), str(config_path)), 0o644)
        click.echo(f"wrote the systemd unit {unit_path}")
    click.echo(f"next: davsync --config {config_path} server app-password --create USER")


def _create(path: Path, text: str, mode: int) -> None:
    """Write a new file; never overwrite what an admin may have edited."""
    try:
        write_atomic(path, text.encode(), mode=mode, replace=False)
    except FileExistsError:
        raise DavsyncError(f"{path} already exists; not overwritten (remove it first)") from None
    except OSError as exc:
        raise DavsyncError(f"cannot create {path}: {exc.strerror}") from None


def _davsync_executable() -> str:
    """This installation's `davsync` (the unit must name it by absolute path)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "davsync" and argv0.exists():
        return os.path.abspath(argv0)
    found = shutil.which("davsync")
    return os.path.abspath(found) if found else "/usr/local/bin/davsync"


@server.command("dev-issuer")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep the signing key here (PEM, 0600) so tokens survive restarts.")
@click.option("--print-token", "token_sub", metavar="SUB",
              help="Also print a token for subject SUB (needs --audience).")
@click.option("--audience", help="The `aud` of the printed token: the server's client_id.")
def dev_issuer(host: str, port: int, key_file: Path | None, token_sub: str | None,
               audience: str | None) -> None:
    """Run a local development OpenID issuer (demo and tests only; trust it in [[issuers]]).

    Prints its issuer URL on the first line of stdout, then serves until Ctrl-C.
    """
    from davsync.server.devissuer import DevIssuer, load_or_create_key

    if token_sub and not audience:
        raise click.UsageError("--print-token needs --audience (the server's client_id)")
    key = load_or_create_key(key_file) if key_file else None
    try:
        issuer = DevIssuer(host, port, key).start()
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(issuer.url)
    if token_sub and audience:
        click.echo(issuer.mint(token_sub, audience, ttl=3600))
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        issuer.stop()


@server.command("dev-token")
@click.option("--issuer", "issuer_url", required=True, help="The running dev issuer's URL.")
@click.option("--audience", required=True, help="The server's client_id for that issuer.")
@click.option("--email", help="An `email` claim (with email_verified = true).")
@click.option("--ttl", default=300, show_default=True, help="Lifetime in seconds.")
@click.argument("sub")
def dev_token(issuer_url: str, audience: str, email: str | None, ttl: int, sub: str) -> None:
    """Print an ID token for SUB from a running dev issuer (usable as `assertion_command`)."""
    import httpx

    from davsync.server.devissuer import request_token

    claims: dict[str, object] = {"ttl": ttl}
    if email:
        claims.update(email=email, email_verified=True)
    try:
        click.echo(request_token(issuer_url, sub, audience, **claims))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise DavsyncError(f"cannot get a token from the dev issuer at {issuer_url}: {exc}"
                           ) from None
