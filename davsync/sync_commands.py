"""`davsync sync` and `davsync status`."""

from __future__ import annotations

import click


@click.command()
def sync() -> None:
    """Make the device's contacts and calendars and the DAV account agree, both ways."""
    raise click.UsageError("sync is not implemented yet")


@click.command()
def status() -> None:
    """Show the last sync, sign-in and backup status."""
    raise click.UsageError("status is not implemented yet")
