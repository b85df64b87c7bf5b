"""`davsync demo`: the whole product on throw-away loopback servers and the shipped samples."""

from __future__ import annotations

import sys

import click

from davsync.cli.context import need_server_extra


@click.command()
def demo() -> None:
    """Sync the sample contacts and events between two throw-away devices through a local
    Radicale, then (where installed) device credentials and an encrypted backup to a local S3.

    Everything it makes is under ./demo-run, recreated on each run.
    """
    need_server_extra("davsync demo")
    from davsync.demo import main

    sys.exit(main())
