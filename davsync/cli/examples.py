"""`davsync example-config`: print the commented example configuration that ships in the
package, so an installed user (who has no checkout and no `config/` folder) can start from it."""

from __future__ import annotations

from importlib.resources import files

import click


@click.command("example-config")
@click.option("--server", "server", is_flag=True,
              help="The self-hosted server's example (server.toml) instead of the client's.")
def example_config(server: bool) -> None:
    """Print a commented example configuration (redirect it to a file, then edit it)."""
    name = "server.example.toml" if server else "davsync.example.toml"
    click.echo(files("davsync").joinpath("examples", name).read_text(encoding="utf-8"), nl=False)
