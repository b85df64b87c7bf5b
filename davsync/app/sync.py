"""The composition root of a sync run: build the adapters from config and run each collection.

What a no-op run costs is mostly the server's change probe, so the order matters: read the
config and the known collection URLs, send every known collection's probe at once over the
standard library (`dav.earlyprobe`), and only then import httpx, the sync pieces
(`davsync.sync`), the parsers and the device source, while the server works on the probes.
Provisioning and backup modules are imported only when used.

The run itself (`sync.run.SyncRun`) is built here from values and never reads the config; the
state directory's lock (`state.lock`) keeps a second run on the same state out.
"""

from __future__ import annotations

import importlib
import logging
import re
import socket
import threading
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin

from davsync.app import recording
from davsync.config import Config
from davsync.dav.api import Authenticator, RequestCounter, basic_authorization
from davsync.dav.hrefs import same_origin, without_userinfo
from davsync.errors import ConfigError, DavsyncError, ServerSettingError
from davsync.report import report_keys
from davsync.state.lock import state_lock
from davsync.state.store import CollectionState, StateStore
from davsync.sync.layout import adopt_single
from davsync.sync.values import SyncResult, Target

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from davsync.core.kinds import Kind
    from davsync.dav.client import DavClient
    from davsync.dav.earlyprobe import EarlyProbe, EarlyRoute
    from davsync.report import CollectionReport
    from davsync.sync.collections import Discovered
    from davsync.sync.context import SyncOptions
    from davsync.sync.ports import Source

log = logging.getLogger(__name__)
# A state key as written before URLs lost their user info: "kind:name@" + the URL with it.
_KEY_WITH_URL = re.compile(r"(.*?@)(https?://.*)", re.DOTALL)


def state_path(config: Config) -> Path:
    return config.state_dir / "state.sqlite"


def make_authenticator(config: Config) -> Authenticator:
    """Like `credentials.authenticator.authenticator_for`, but basic auth never imports the
    provisioning client (PyJWT, cryptography): that would add ~0.15 s to every no-op run."""
    if config.server.auth == "provision":
        from davsync.app.credentials import provisioning_authenticator

        return provisioning_authenticator(config)
    from davsync.app.credentials import basic_authenticator

    return basic_authenticator(config)


def dav_url(config: Config, auth: Authenticator) -> str:
    if config.server.url:
        return config.server.url
    from davsync.app.credentials import dav_url_for

    return dav_url_for(config, auth)


def configured_collections(config: Config) -> list[tuple[Kind, str, Path]]:
    """The one collection of each kind configured the single way (`[server] addressbook`);
    the kinds with `collections = ...` are `collection_kinds`."""
    out: list[tuple[Kind, str, Path]] = []
    if config.device.contacts is not None and config.device.collections("contacts") is None:
        out.append(("contacts", config.server.addressbook, config.device.contacts))
    if config.device.calendars is not None and config.device.collections("calendars") is None:
        out.append(("calendars", config.server.calendar, config.device.calendars))
    return out


def collection_kinds(config: Config) -> list[tuple[Kind, Path, tuple[str, ...] | None]]:
    """(kind, parent folder, names or None for "all") of each kind with `collections`."""
    out: list[tuple[Kind, Path, tuple[str, ...] | None]] = []
    for kind, path in (("contacts", config.device.contacts),
                       ("calendars", config.device.calendars)):
        choice = config.device.collections(kind)
        if path is not None and choice is not None:
            out.append((kind, path, None if choice == "all" else choice))  # type: ignore[arg-type]
    return out


def only_selects(only: tuple[str, ...], kind: str, name: str) -> bool:
    """Whether `--only` words pick the collection: its kind, its name, or "<kind>/<name>"."""
    return not only or kind in only or name in only or f"{kind}/{name}" in only


def run_sync(
    config: Config, *, allow_mass_delete: bool = False, only: tuple[str, ...] = (),
    cancel: threading.Event | None = None,
) -> SyncResult:
    """Sync every configured collection; a fatal error (unreachable, refused, another run on
    the same state directory) stops the run. `cancel`: set it to stop between items."""
    result = SyncResult()
    try:
        with state_lock(config.state_dir, "sync", busy=_busy):
            _locked_run(config, result, allow_mass_delete, only, cancel)
    except DavsyncError as exc:
        result.fatal = exc
    return result


def _busy(path: Path, who: str) -> str:
    return (f"another davsync sync ({who}) is using the state directory {path.parent}; "
            "try again when it has finished")


def _locked_run(
    config: Config, result: SyncResult, allow_mass_delete: bool, only: tuple[str, ...],
    cancel: threading.Event | None,
) -> None:
    counter = RequestCounter()
    store = StateStore(state_path(config))
    targets: list[Target] = []
    try:
        auth = make_authenticator(config)
        base_url = dav_url(config, auth)
        targets = _targets(config, store, base_url, only)
        route = _send_early_probes(config, auth, targets, counter, store)
        if not collection_kinds(config) and _only_vdirs(config, targets) \
                and _nothing_to_do(store, targets, result):
            return
        if route is not None:
            _send_early_syncs(route, targets, store)
        # httpx: imported while the probes are out
        with make_client(config, auth, base_url, counter,
                         route.tls if route else None) as client:
            _run(config, client, store, targets, result, allow_mass_delete, cancel,
                 (base_url, only))
    except ServerSettingError as exc:
        result.fatal = ConfigError(f"{config.path} {exc}")
    except DavsyncError as exc:
        result.fatal = exc
    finally:
        for target in targets:
            for early in (target.early, target.early_sync):
                if early is not None:
                    early.close()
        result.http_requests = counter.count
        store.close()


def _run(
    config: Config, client: DavClient, store: StateStore, targets: list[Target],
    result: SyncResult, allow_mass_delete: bool, cancel: threading.Event | None,
    where: tuple[str, tuple[str, ...]],
    pull_only: bool = False,
) -> None:
    """Discover the kinds with `collections`, then sync every target. `where`: the DAV base
    URL (state keys) and the `--only` words."""
    from davsync.sync.collections import sync_meta
    from davsync.sync.run import SyncRun

    found = _discover(config, client, store, *where, pull_only=pull_only)
    targets = targets + found.targets
    _name_reports([*targets, *(t for t, _ in found.reports)])
    run = SyncRun(client, store, _options(config, allow_mass_delete, pull_only),
                  create=config.server.create, source_for=_source_builder(config))
    if cancel is not None:
        run.cancel = cancel
    run.run(targets, result)
    for target in found.targets:
        report = result.collections.get(target.report_key)
        if report is not None:
            sync_meta(client, store, target, found.listed[target.key], report,
                      pull_only=pull_only)
            _save_result(store, target, report)
    for target, report in found.reports:
        result.collections[target.report_key] = report
        _save_result(store, target, report)


def _save_result(store: StateStore, target: Target, report: CollectionReport) -> None:
    when = datetime.now(UTC).isoformat(timespec="seconds")
    if store.collection(target.key) is not None:
        store.save_result(target.key, when, report.as_json())


def _discover(config: Config, client: DavClient, store: StateStore, base_url: str,
              only: tuple[str, ...], *, pull_only: bool = False) -> Discovered:
    """Every kind configured with `collections`: its collections paired and prepared
    (`sync.collections`). An `--only` word that names nothing configured or found is a
    config error, as it is for the single-collection form (`cli.sync`)."""
    from davsync.sync.collections import Discovered as Found
    from davsync.sync.collections import KindSpec, discover

    found = Found()
    for kind, parent, wanted in collection_kinds(config):
        spec = KindSpec(kind, parent, wanted, config.server.create and not pull_only,
                        partial(_key_of, kind, base_url), pull_only)
        one = discover(client, store, spec, partial(only_selects, only, kind))
        found.targets += one.targets
        found.reports += one.reports
        found.listed.update(one.listed)
    _check_only(config, only, found)
    return found


def _key_of(kind: str, base_url: str, name: str) -> str:
    return state_key(kind, name, base_url)


def _check_only(config: Config, only: tuple[str, ...], found: Discovered) -> None:
    if not collection_kinds(config):
        return  # checked before the run (`cli.sync`)
    words = {w for kind, name, _ in configured_collections(config)
             for w in (kind, name, f"{kind}/{name}")}
    words |= {kind for kind, _, _ in collection_kinds(config)}
    words |= {w for t in [*found.targets, *(t for t, _ in found.reports)]
              for w in (t.name, f"{t.kind}/{t.name}")}
    unknown = [w for w in only if w not in words]
    if unknown:
        raise ConfigError(f"--only {unknown[0]!r}: no configured kind and no collection of "
                          f"the account has that name; run `davsync collections` to list them")


def _name_reports(targets: list[Target]) -> None:
    """Each target's key in `sync --json`: its name, "<kind>/<name>" where two share one."""
    keys = report_keys([(t.kind, t.name) for t in targets])
    for target, key in zip(targets, keys, strict=True):
        target.report_key = key


def _source_builder(config: Config) -> Callable[[Target], Source]:
    """Each target's device store, of the type `[device]` gives its kind (the registry's)."""
    from davsync.sources.registry import open_store

    def source_for(target: Target) -> Source:
        source: Source = open_store(config.device.store_type(target.kind), target.path,
                                    target.kind)
        return source

    return source_for


def _options(config: Config, allow_mass_delete: bool, pull_only: bool = False) -> SyncOptions:
    from davsync.sync.context import SyncOptions

    server = config.server
    return SyncOptions(
        conflict=server.conflict, allow_mass_delete=allow_mass_delete,
        concurrency=server.concurrency,
        device_label=server.device_name or socket.gethostname(), pull_only=pull_only,
    )


def make_client(config: Config, auth: Authenticator, base_url: str, counter: RequestCounter,
                tls: ssl.SSLContext | None = None) -> DavClient:
    """The DAV client `[server]` describes (one HTTP pool; close it, or use `with`)."""
    from davsync.dav.client import DavClient

    server = config.server
    return DavClient(
        base_url, auth, verify_tls=server.verify_tls, connect_timeout=server.connect_timeout,
        read_timeout=server.read_timeout, concurrency=server.concurrency,
        multiget_batch=server.multiget_batch, max_retries=server.max_retries, counter=counter,
        request_timeout=server.request_timeout, tls=tls,
        wrap_transport=recording.transport_wrapper("dav"),
    )


class SyncService:
    """Syncs again and again in one process (a daemon, a watcher): every run shares one
    authenticator and one DAV client, so one HTTP connection pool; each takes the state
    directory's lock for its duration, so a command run beside it waits or is told. Runs
    do not overlap (`run` is called from one thread at a time); `close` when done.
    `pull_only` (restore mode): server changes are applied, nothing is written to the server."""

    def __init__(self, config: Config, *, pull_only: bool = False) -> None:
        self.config = config
        self.pull_only = pull_only
        self._counter = RequestCounter()
        self._auth: Authenticator | None = None
        self._client: DavClient | None = None
        self._base_url = ""

    def run(self, *, allow_mass_delete: bool = False, only: tuple[str, ...] = (),
            cancel: threading.Event | None = None) -> SyncResult:
        result = SyncResult()
        before = self._counter.count
        try:
            with state_lock(self.config.state_dir, "sync", busy=_busy):
                store = StateStore(state_path(self.config))
                try:
                    client = self._open()
                    client.new_run()
                    targets = _targets(self.config, store, self._base_url, only)
                    _run(self.config, client, store, targets, result, allow_mass_delete, cancel,
                         (self._base_url, only), self.pull_only)
                finally:
                    store.close()
        except ServerSettingError as exc:
            result.fatal = ConfigError(f"{self.config.path} {exc}")
        except DavsyncError as exc:
            result.fatal = exc
        result.http_requests = self._counter.count - before
        return result

    @property
    def requests(self) -> int:
        """Requests made so far (read by the daemon's watchdog from another thread)."""
        return self._counter.count

    def _open(self) -> DavClient:
        if self._client is None:
            self._auth = self._auth or make_authenticator(self.config)
            self._base_url = dav_url(self.config, self._auth)
            self._client = make_client(self.config, self._auth, self._base_url, self._counter)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _targets(
    config: Config, store: StateStore, base_url: str, only: tuple[str, ...]
) -> list[Target]:
    targets = []
    configured = configured_collections(config)
    keys = report_keys([(kind, name) for kind, name, _ in configured])
    for (kind, name, path), report_key in zip(configured, keys, strict=True):
        if not only_selects(only, kind, name):
            continue
        key = state_key(kind, name, base_url)
        known = store.collection(key) or _adopt_key_with_userinfo(store, key)
        adopt_single(store, key, kind, path)
        url = urljoin(base_url, known.url) if known is not None and known.url else None
        if url is not None and not same_origin(url, base_url):
            log.warning("%s: the stored URL %s is not on the configured server; looking the "
                        "collection up again", name, without_userinfo(url))
            url = None
        targets.append(Target(kind, name, path, key, url, report_key=report_key))
    return targets


def state_key(kind: str, name: str, base_url: str) -> str:
    """A collection's key in the state store: apart by kind and by server (never with the
    URL's user info: it may hold a password)."""
    return f"{kind}:{name}@{without_userinfo(base_url)}"


def name_in_state_key(key: str, kind: str) -> str:
    """The collection name a `state_key` was made from."""
    rest = key.removeprefix(f"{kind}:")
    at = rest.rfind("@http")
    return rest[:at] if at >= 0 else rest


def _adopt_key_with_userinfo(store: StateStore, key: str) -> CollectionState | None:
    """The state of `key` stored by an older davsync under the configured URL with its user
    info (a password, too): moved to `key`, so it stays synced and the password leaves the
    state database."""
    for known in store.collections():
        match = _KEY_WITH_URL.fullmatch(known.name)
        if match is None or match[1] + without_userinfo(match[2]) != key or known.name == key:
            continue
        store.rename_collection(known.name, key)
        return store.collection(key)
    return None


def _send_early_probes(
    config: Config, auth: Authenticator, targets: list[Target], counter: RequestCounter,
    store: StateStore,
) -> EarlyRoute | None:
    """Send the probe of every collection whose URL is known, all at once (a no-op run then
    costs the slowest probe, not their sum); returns the way they went (with the TLS context
    built for them, if any), None when none was sent. Each asks what `Collection.probe`
    would (`_probe_props`)."""
    known = [(t, t.url) for t in targets if t.url is not None]
    if not known:
        return None
    from davsync.dav import xmlbodies as xb
    from davsync.dav.earlyprobe import EarlyProbe, EarlyRoute, proxy_configured

    if proxy_configured() or recording.active():
        return None
    server = config.server
    tls = None
    if any(url.startswith("https:") for _, url in known):
        from davsync.dav.tls import tls_context

        tls = tls_context(server.verify_tls)
    route = EarlyRoute(basic_authorization(auth), tls, server.connect_timeout,
                       server.read_timeout, counter, server.request_timeout)
    for target, url in known:
        target.early = EarlyProbe(url, xb.propfind(_probe_props(store, target)), route)
    return route


def _send_early_syncs(route: EarlyRoute, targets: list[Target], store: StateStore) -> None:
    """For each collection whose early probe has answered (none is waited for) with a change
    the engine will take from its sync-token in one sync-collection with the data (the
    quirks table's "sync_collection_data"), send that request now, the same way: the server
    builds its answer while httpx and the engine are imported (`dav.earlyprobe`). Not where
    the engine would probe again first (`Probe.wants_ctag_probe`)."""
    from davsync.dav import xmlbodies as xb
    from davsync.dav.earlyprobe import EarlySync
    from davsync.dav.quirks import identify, rating

    for target in targets:
        early = target.early
        known = store.collection(target.key)
        if early is None or known is None or known.sync_token is None or not early.arrived():
            continue
        if rating(identify(sync_token=known.sync_token), "sync_collection_data") != "supported":
            continue
        probe = early.probe()
        if (probe is None or probe.shows_no_change(known.ctag, known.sync_token, known.modified)
                or probe.wants_ctag_probe(known.ctag, known.sync_token, known.modified)):
            continue
        body = xb.sync_with_data(known.sync_token, target.kind)
        target.early_sync = EarlySync(early.url, body, known.sync_token, route)


def _probe_props(store: StateStore, target: Target) -> tuple[str, ...]:
    """What `Collection.probe` would ask of this collection, by the server the state
    recorded it on (its sync-token) and the marks it holds (`dav.probe.probe_props`)."""
    from davsync.dav.probe import probe_props
    from davsync.dav.quirks import identify

    known = store.collection(target.key)
    server = identify(sync_token=known.sync_token if known else None)
    return probe_props(server, marked=known is not None and known.modified is not None)


def _only_vdirs(config: Config, targets: list[Target]) -> bool:
    """Whether `_nothing_to_do` may look: it scans vdirs only, as a store kept in one file
    needs its parser (the imports the fast path avoids) to be scanned."""
    return all(config.device.store_type(t.kind) == "vdir" for t in targets)


# What a run that goes on imports once the probes have answered, in the order it does.
_RUN_MODULES: Final = ("httpx", "davsync.dav.client", "davsync.sync.run",
                       "davsync.sync.collections")


def _import_while_waiting(probes: list[EarlyProbe]) -> None:
    """Import what the rest of a run needs, a module at a time, for as long as a probe is
    still out: a run that goes on (a change on the server) then sends its next request when
    the answer comes, not ~70 ms later, and a no-op waits at most one module's import
    (~25 ms) past its answer."""
    for name in _RUN_MODULES:
        if all(p.arrived() for p in probes):
            return
        importlib.import_module(name)


def _nothing_to_do(store: StateStore, targets: list[Target], result: SyncResult) -> bool:
    """A run in which every device folder matches the state and every early probe matches the
    stored marks ends here, having imported neither httpx nor the engine nor a parser (about
    0.15 s). Anything else (a change, a re-check pending, an answer only the main client can
    deal with) goes the whole way, where the engine decides the same from the same facts."""
    if not targets or any(t.early is None for t in targets):
        return False
    from davsync.core.synced import device_unchanged
    from davsync.sources.base import SourceError
    from davsync.sources.vdir import VdirSource

    marks = {}
    skipped: dict[str, dict[str, str]] = {}
    settled: dict[str, str | None] = {}  # a getlastmodified mark to store (`dav.probe`)
    for target in targets:  # the device side first: it overlaps the probes in flight
        known = store.collection(target.key)
        if known is None or store.pending(target.key):
            return False
        source = VdirSource(target.path, target.kind)
        try:
            scan = source.scan()
        except SourceError:
            return False  # the engine reports it as this collection's error
        if not device_unchanged(scan, store.items(target.key).values()):
            return False
        marks[target.key] = known
        skipped[target.key] = source.skipped
    _import_while_waiting([t.early for t in targets if t.early is not None])
    for target in targets:
        assert target.early is not None
        probe, known = target.early.probe(), marks[target.key]
        if probe is None or not probe.shows_no_change(known.ctag, known.sync_token,
                                                      known.modified):
            return False
        settled[target.key] = probe.mark if probe.mark != known.modified else None
    from davsync.report import CollectionReport

    when = datetime.now(UTC).isoformat(timespec="seconds")
    for target in targets:
        report = result.collections[target.report_key] = CollectionReport()
        for name, why in sorted(skipped[target.key].items()):  # as the engine would report
            report.error(f"{target.path}/{name}", why)
        store.save_result(target.key, when, report.as_json())
        mark = settled[target.key]
        if mark is not None:
            store.save_modified(target.key, mark)
    return True
