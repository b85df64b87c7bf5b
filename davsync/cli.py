"""The `davsync` command line: one group, each room contributing its own commands."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from davsync import __version__
from davsync.appctx import AppContext
from davsync.errors import DavsyncError


class _Group(click.Group):
    """Turns DavsyncError into its message and exit code instead of a traceback."""

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


def _register() -> None:
    from davsync.backup.commands import backup, restore
    from davsync.credentials.commands import login, logout, whoami
    from davsync.server.commands import server
    from davsync.sync_commands import status, sync

    for command in (sync, status, login, logout, whoami, backup, restore, server):
        main.add_command(command)


_register()

