"""`davsync collections` (alias `discover`): the account's addressbooks and calendars."""

from __future__ import annotations

import json

import click

from davsync.cli.context import AppContext, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def collections(app: AppContext, as_json: bool) -> None:
    """List the account's addressbooks and calendars: kind, name, display name, items."""
    from davsync.app.collections import account_collections

    rows = account_collections(app.config())
    if as_json:
        click.echo(json.dumps({"collections": [r.as_json() for r in rows]}, ensure_ascii=False))
        return
    if not rows:
        click.echo("the account has no addressbook and no calendar")
    width = max((len(r.name) for r in rows), default=0)
    for r in rows:
        shown = "" if r.displayname in (None, r.name) else f"  {r.displayname!r}"
        noun = "item" if r.items == 1 else "items"
        click.echo(f"{r.kind:<9}  {r.name:<{width}}  {r.items:>5} {noun}{shown}")
