"""`davsync login`, `logout`, `whoami` (placeholder until the provisioning issue lands)."""

from __future__ import annotations

import click


@click.command()
def login() -> None:
    """Sign in with the identity provider and provision this device's DAV credentials."""
    raise click.UsageError("login is not implemented yet")


@click.command()
def logout() -> None:
    """Delete this device's credentials and ask the server to revoke them."""
    raise click.UsageError("logout is not implemented yet")


@click.command()
def whoami() -> None:
    """Show as whom, which device and which server this installation is signed in."""
    raise click.UsageError("whoami is not implemented yet")
