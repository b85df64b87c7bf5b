"""`davsync doctor`: check the installation, one line per check (`app.doctor` does the work)."""

from __future__ import annotations

import json
import sys

import click

from davsync.cli.context import AppContext, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@pass_app
def doctor(app: AppContext, as_json: bool) -> None:
    """Check the config, the DAV server, the device stores, the backup bucket and systemd.

    Prints one line per check (ok, note, or FAIL with what to do) and exits 0 when nothing
    failed, 1 when a check failed, 2 when the config cannot be read."""
    from davsync.app.doctor import run_doctor

    report = run_doctor(app.config_path)
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        for check in report.checks:
            click.echo(check.line())
    sys.exit(report.exit_code)
