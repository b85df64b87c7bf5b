"""`davsync backup ...` and `davsync restore` (placeholder until the backup issue lands)."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def backup(ctx: click.Context) -> None:
    """Back up media, documents, contacts and calendars to encrypted S3."""
    if ctx.invoked_subcommand is None:
        raise click.UsageError("backup is not implemented yet")


@click.command()
def restore() -> None:
    """Restore a backup into a directory."""
    raise click.UsageError("restore is not implemented yet")
