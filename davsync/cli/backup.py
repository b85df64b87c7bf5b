"""`davsync backup`, `davsync backup key --sse-c` and `davsync restore`."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import click

from davsync.app.backup_config import parse_backup
from davsync.backup.progress import human_bytes
from davsync.backup.settings import ALL_CATEGORIES
from davsync.backup.stats import Stats, read_status
from davsync.cli.context import AppContext, pass_app
from davsync.config import Config
from davsync.errors import EXIT_ITEMS_FAILED


def backup_status(config: Config) -> dict[str, Any]:
    """Backup and restore statistics for `davsync status` (YET_TO_START when never run)."""
    return read_status(config.state_dir)


def _report(kind: str, stats: Stats) -> int:
    summary = stats.to_json()
    skipped = f"{summary['skipped_files']} skipped, " if kind == "restore" else ""
    click.echo(f"{kind}: {summary['succeeded_files']}/{summary['total_files']} files ok, "
               f"{summary['failed_files']} failed, {skipped}"
               f"{human_bytes(summary['bytes_processed'])} processed", err=True)
    for name, cat in summary["categories"].items():
        for err in cat["error_files"]:
            click.echo(f"  {name}: {err['path']}: {err['error']}", err=True)
        for skip in cat["skipped"]:
            click.echo(f"  {name}: {skip['path']}: skipped: {skip['reason']}", err=True)
    return EXIT_ITEMS_FAILED if summary["failed_files"] or summary["skipped_files"] else 0


@click.group(invoke_without_command=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@pass_app
@click.pass_context
def backup(ctx: click.Context, app: AppContext, quiet: bool) -> None:
    """Back up media, documents, contacts and calendars to encrypted S3.

    Exit status: 0 all backed up, 1 some files failed (each is named), 2 configuration error,
    3 the server is unreachable or refused the credentials, 4 wrong passphrase.
    """
    if ctx.invoked_subcommand is not None:
        return
    from davsync.app.backup import backup_run
    from davsync.backup.run import RunOptions

    cfg = parse_backup(app.config())
    stats = backup_run(cfg, RunOptions(progress=not quiet)).run()
    ctx.exit(_report("backup", stats))


@backup.command()
@click.option("--sse-c", "sse_c", is_flag=True, required=True,
              help="Print the SSE-C key (base64) for reading objects with standard S3 tools.")
@pass_app
def key(app: AppContext, sse_c: bool) -> None:
    """Print the derived SSE-C key, base64-encoded, e.g. for `aws s3 cp --sse-c`.

    Anyone with this key and the bucket credentials can read the backup: keep it secret.
    """
    from davsync.app.backup import open_backup_repository

    cfg = parse_backup(app.config())
    repo = open_backup_repository(cfg, create=False)
    repo.close()
    if repo.encryption != "sse-c":
        click.echo("note: this backup uses client-side encryption; the SSE-C key is not used "
                   "for its objects", err=True)
    click.echo(base64.b64encode(repo.keys.sse_c).decode())


@click.command()
@click.option("--to", "to", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder to restore into (created if missing).")
@click.option("--category", "categories", multiple=True, type=click.Choice(ALL_CATEGORIES),
              help="Restore only this category (repeatable; default: all).")
@click.option("--overwrite", is_flag=True,
              help="Replace files in the folder that differ from the backup (default: keep "
                   "them and name them).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@pass_app
@click.pass_context
def restore(ctx: click.Context, app: AppContext, to: Path, categories: tuple[str, ...],
            overwrite: bool, quiet: bool) -> None:
    """Restore the backup into a folder: byte-identical files with their modification times.

    A file already there that is identical to the backup's is left alone; one that differs is
    kept and named (skipped) unless --overwrite. Exit status: 0 all restored, 1 some files
    failed or were skipped (each is named), 2 configuration error, 3 the server is unreachable
    or refused the credentials, 4 wrong passphrase.
    """
    from davsync.app.backup import restore_run
    from davsync.backup.restore import RestoreOptions

    cfg = parse_backup(app.config())
    opts = RestoreOptions(progress=not quiet, overwrite=overwrite)
    run = restore_run(cfg, to, categories or None, opts)
    ctx.exit(_report("restore", run.run()))
