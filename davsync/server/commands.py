"""`davsync server ...` (placeholder until the provisioning issue lands)."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def server(ctx: click.Context) -> None:
    """Run the self-hosted server: Radicale plus the provisioning endpoint."""
    if ctx.invoked_subcommand is None:
        raise click.UsageError("server is not implemented yet")
