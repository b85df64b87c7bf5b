"""The `davsync` command line: one group; each room contributes its own commands.

Commands are imported only when run (click's lazy-loading pattern), so `davsync sync` never
pays for boto3, PyJWT or the server's modules: a no-op sync is dominated by the network probe.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from pathlib import Path

import click

from davsync import __version__
from davsync.app.logsetup import configure_logging
from davsync.cli.context import AppContext
from davsync.errors import DavsyncError

COMMANDS = {
    "sync": "davsync.cli.sync:sync",
    "status": "davsync.cli.sync:status",
    "collections": "davsync.cli.collections:collections",
    "discover": "davsync.cli.collections:collections",
    "run": "davsync.cli.run:run",
    "login": "davsync.cli.auth:login",
    "logout": "davsync.cli.auth:logout",
    "whoami": "davsync.cli.auth:whoami",
    "backup": "davsync.cli.backup:backup",
    "restore": "davsync.cli.backup:restore",
    "server": "davsync.cli.server:server",
    "demo": "davsync.cli.demo:demo",
    "example-config": "davsync.cli.examples:example_config",
    "doctor": "davsync.cli.doctor:doctor",
}


class _Group(click.Group):
    """Loads commands lazily and turns DavsyncError into its message and exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DavsyncError as exc:
            click.echo(f"davsync: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="davsync")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $DAVSYNC_CONFIG, else $XDG_CONFIG_HOME/davsync/config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for HTTP requests).")
@click.option(
    "--record-http", "record_http", type=click.Path(path_type=Path, file_okay=False),
    help="Write every HTTP exchange of this run (DAV, sign-in, S3) to a file in this folder, "
         "secrets redacted, for a bug report (README: troubleshooting).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int,
         record_http: Path | None) -> None:
    """Sync contacts and calendars with CardDAV/CalDAV, and back up media to encrypted S3."""
    configure_logging(verbose)
    ctx.obj = AppContext(config_path=config_path, verbose=verbose)
    if record_http is not None:
        _record_http(ctx, record_http)


def _record_http(ctx: click.Context, directory: Path) -> None:
    """Start the recording; it is closed with the command, whatever way that ends."""
    from davsync.app import recording

    try:
        recording.start(directory)
    except DavsyncError as exc:
        click.echo(f"davsync: {exc}", err=True)
        ctx.exit(exc.exit_code)
    ctx.call_on_close(recording.stop)


def entry() -> None:
    """The console script: run the command, then end the process without tearing the
    interpreter down.

    Freeing every module and object at exit costs 35-80 ms, a tenth of a no-op sync. When the
    command has finished and no other thread is left, nothing remains for that teardown to do
    but free memory: the atexit handlers (logging, temporary folders) still run and the standard
    streams are flushed before `os._exit`. The file work a sync leaves to background threads
    (unlinking replaced files) is waited for first, as the normal exit would, so those threads
    do not force the slow exit. Otherwise the exit is the normal one.
    """
    code: str | int | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    _stop_background()
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    os._exit(_exit_status(code))


def _stop_background() -> None:
    """`fsutil.stop_background`, if the command used that module (importing it for a command
    that did not would cost more than the fast exit saves)."""
    fsutil = sys.modules.get("davsync.fsutil")
    if fsutil is not None:
        fsutil.stop_background()


def _exit_status(code: str | int | None) -> int:
    """What the interpreter would make of a SystemExit code, streams flushed."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = 1 if isinstance(code, str) else code or 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader is gone, as with a normal exit
            status = status or 120
    return status

