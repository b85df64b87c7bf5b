"""`davsync sync` and `davsync status`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from davsync.app.sync import collection_kinds, configured_collections, run_sync
from davsync.cli.context import AppContext, pass_app
from davsync.config import Config
from davsync.runstatus import last_failure, record_outcome
from davsync.sync.values import SyncResult


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Allow a run to delete more than half of a side (at least 10 items), "
              "or every item of a side.")
@click.option("--only", multiple=True, help="Sync only this kind (contacts, calendars) or "
              "collection name; repeatable.")
@pass_app
def sync(app: AppContext, as_json: bool, allow_mass_delete: bool, only: tuple[str, ...]) -> None:
    """Make the device's contacts and calendars and the DAV account agree, both ways."""
    config = app.config()
    _check_sync_config(config, only)
    result = run_sync(config, allow_mass_delete=allow_mass_delete, only=only)
    record_outcome(config.state_dir, result.fatal)
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        _print_human(result)
    sys.exit(result.exit_code)


def _check_sync_config(config: Config, only: tuple[str, ...]) -> None:
    """Refuse, before any request, what would otherwise do nothing in silence or fail deep in
    the run: no [server] or [device] folders, a folder that is a file, an unknown --only."""
    config.server  # noqa: B018 - raises the config error when [server] is missing
    config.device.folders()
    known = [word for kind, name, _ in configured_collections(config) for word in (kind, name)]
    for kind, _, names in collection_kinds(config):
        if names is None:
            return  # the account's names are known once listed: checked then (`app.sync`)
        known += [kind, *names, *(f"{kind}/{name}" for name in names)]
    for word in only:
        if word not in known:
            choices = ", ".join(dict.fromkeys(known))
            raise click.BadParameter(
                f"{word!r} is neither a configured kind nor a collection name; choose from "
                f"{choices}", param_hint="'--only'",
            )


def _print_human(result: SyncResult) -> None:
    for name, report in result.collections.items():
        click.echo(f"{name}: {report.summary()}")
        for conflict in report.conflict_items:
            click.echo(f"  conflict: {conflict['item']}: {conflict['outcome']}")
        for err in report.errors:
            click.echo(f"  error: {err['item']}: {err['reason']}", err=True)
    if result.fatal is not None:
        click.echo(f"davsync: {result.fatal}", err=True)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show the last sync, sign-in and backup status."""
    config = app.config()
    out: dict[str, Any] = {"sync": _sync_status(config), "daemon": _daemon_status(config)}
    failure = last_failure(config.state_dir)
    out["last_failure"] = failure
    if config.has_server():
        from davsync.app.credentials import auth_status

        out["auth"] = auth_status(config)
    if config.has_section("backup"):
        from davsync.cli.backup import backup_status

        out["backup"] = backup_status(config)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, default=str))
    else:
        _print_status(out)
    sys.exit(_status_code(out))


def _status_code(out: dict[str, Any]) -> int:
    """What the last run said, for a monitoring check: the code of a run that could not talk
    to the server (3), else 1 while any collection's last run or the last backup or restore
    had files fail (or skipped changed files), else 0."""
    failure = out["last_failure"]
    if failure:
        return int(failure.get("exit_code", 3))
    failed = any((info.get("last_result") or {}).get("errors") for info in out["sync"].values())
    transfers = out.get("backup", {}).values()
    failed = failed or any(t.get("failed_files") or t.get("skipped_files") for t in transfers)
    return 1 if failed else 0


def _daemon_status(config: Config) -> dict[str, Any]:
    """Whether `davsync run` is running on this state directory, the mode in force and who
    set it, and the next run of each of its jobs (as the daemon last wrote them)."""
    from davsync.app.credentials import mode_in_force
    from davsync.runstatus import daemon_status
    from davsync.state.lock import is_held

    running = is_held(config.state_dir, "daemon")
    written = daemon_status(config.state_dir) or {}
    if running and written.get("running"):
        return {"running": True, **{k: written.get(k) for k in (
            "pid", "started", "mode", "mode_source", "jobs", "sync_runs")}}
    mode, source = mode_in_force(config)
    return {"running": False, "mode": mode.value, "mode_source": source, "jobs": {}}


def _print_status(out: dict[str, Any]) -> None:
    _print_daemon(out["daemon"])
    for name, info in out["sync"].items():
        pending = info.get("pending")
        waiting = (f", {pending} device change{'s' if pending > 1 else ''} not on the server "
                   "yet" if pending else "")
        click.echo(f"sync {name}: last run {info['last_sync'] or 'never'}{waiting}")
        result = info.get("last_result") or {}
        for err in result.get("errors", []):
            click.echo(f"  error: {err['item']}: {err['reason']}")
    failure = out["last_failure"]
    if failure:
        click.echo(f"last sync failed at {failure.get('when')}: {failure.get('reason')}")
    if "auth" in out:
        auth = out["auth"]
        who = auth.get("username") or "nobody"
        reason = auth.get("reason")
        said = reason and not (failure and reason == failure.get("reason"))  # printed once
        click.echo(f"auth: {auth.get('state')} as {who} on {auth.get('server')}"
                   + (f" ({reason})" if said else ""))
    if "backup" in out:
        for kind in ("backup", "restore"):
            _print_transfer(kind, out["backup"][kind])


def _print_daemon(daemon: dict[str, Any]) -> None:
    mode = f"mode {daemon['mode']} (set by {daemon['mode_source']})"
    if not daemon["running"]:
        click.echo(f"daemon: not running; {mode}")
        return
    click.echo(f"daemon: running since {daemon['started']} (pid {daemon['pid']}); {mode}")
    for job, info in sorted((daemon.get("jobs") or {}).items()):
        click.echo(f"  next {job}: {info.get('next_run') or 'not scheduled'}")


def _print_transfer(kind: str, stats: dict[str, Any]) -> None:
    """One line for the last backup or restore, then each file that failed or was skipped
    (`status --json` has every figure, per category)."""
    from davsync.backup.progress import human_bytes

    if stats["status"] == "YET_TO_START":
        click.echo(f"{kind}: never run")
        return
    skipped = f", {stats['skipped_files']} skipped" if stats.get("skipped_files") else ""
    click.echo(f"{kind}: {stats['status'].lower().replace('_', ' ')} at "
               f"{stats['last_modified']}: {stats['succeeded_files']}/{stats['total_files']} "
               f"files ok, {stats['failed_files']} failed{skipped}, "
               f"{human_bytes(stats['bytes_processed'])} processed")
    for name, cat in stats["categories"].items():
        for err in cat.get("error_files", []):
            click.echo(f"  {name}: {err['path']}: {err['error']}")
        for skip in cat.get("skipped", []):
            click.echo(f"  {name}: {skip['path']}: skipped: {skip['reason']}")


def _sync_status(config: Any) -> dict[str, Any]:
    """Every collection in the state, keyed as `sync --json` keys it (`report.report_keys`);
    one known on two servers (the URL changed) keeps its full state key for each."""
    from davsync.app.sync import name_in_state_key, state_path
    from davsync.report import report_keys
    from davsync.state.store import StateStore

    path = state_path(config)
    if not path.exists():
        return {}
    store = StateStore(path)
    try:
        known = store.collections()
    finally:
        store.close()
    names = [name_in_state_key(c.name, c.kind) for c in known]
    keys = report_keys([(c.kind, name) for c, name in zip(known, names, strict=True)])
    repeated = {key for key in keys if keys.count(key) > 1}
    return {
        c.name if key in repeated else key: {
            "kind": c.kind, "name": name, "url": c.url, "last_sync": c.last_sync,
            "last_result": c.last_result, "pending": (c.last_result or {}).get("pending", 0),
        }
        for c, name, key in zip(known, names, keys, strict=True)
    }
