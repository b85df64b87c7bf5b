"""The `davsync` command line: one group; each room contributes its own commands.

Commands are imported only when run (click's lazy-loading pattern), so `davsync sync` never
pays for boto3, PyJWT or the server's modules: a no-op sync is dominated by the network probe.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import click

from davsync import __version__
from davsync.appctx import AppContext
from davsync.errors import DavsyncError

COMMANDS = {
    "sync": "davsync.sync_commands:sync",
    "status": "davsync.sync_commands:status",
    "login": "davsync.credentials.commands:login",
    "logout": "davsync.credentials.commands:logout",
    "whoami": "davsync.credentials.commands:whoami",
    "backup": "davsync.backup.commands:backup",
    "restore": "davsync.backup.commands:restore",
    "server": "davsync.server.commands:server",
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
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """Sync contacts and calendars with CardDAV/CalDAV, and back up media to encrypted S3."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = AppContext(config_path=config_path, verbose=verbose)


if __name__ == "__main__":
    main()
