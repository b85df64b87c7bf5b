"""`davsync run`: the long-running daemon (davsync/app/daemon.py), for systemd or a terminal."""

from __future__ import annotations

import sys

import click

from davsync.cli.context import AppContext, pass_app


@click.command()
@pass_app
def run(app: AppContext) -> None:
    """Keep contacts and calendars synced and media backed up until stopped.

    Syncs every [daemon] sync_interval seconds and within seconds of a change in a device
    folder; backs up every backup_interval seconds when [backup] is configured. A run that
    fails (server unreachable, login refused) is retried later with backoff: the daemon does
    not exit for that. SIGTERM or Ctrl-C: the item in flight finishes, then exit 0. SIGHUP
    (systemctl --user reload davsync): the configuration is read again; a broken one is
    reported and the one running is kept. Logs as [log] level and format say (read at
    start); -v/-vv win over the level.
    """
    from davsync.app.daemon import Daemon
    from davsync.app.logsetup import configure_logging
    from davsync.app.notify import Notifier

    config = app.config()
    configure_logging(app.verbose, level=config.log.level.value,
                      log_format=config.log.format.value)
    sys.exit(Daemon(config, Notifier.from_environ()).run())
