"""A sync run over many collections, built from values, repeatable in one process.

`SyncRun` takes an open DAV client, a state store and options; it never reads the
configuration (`davsync.app.sync` does) and never creates or closes the client, so a
long-lived process runs it again and again over one HTTP pool and one authenticator.
`cancel`, once set, stops the run between items: the item in flight finishes, the marks stay
consistent (not advanced past what was applied), and the next run completes the work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from davsync.dav.api import DavError, Probe
from davsync.dav.discovery import find_collection, open_collection
from davsync.dav.quirks import identify
from davsync.report import CollectionReport
from davsync.sources.base import SourceError
from davsync.sync.collection import CollectionSync
from davsync.sync.context import Context, SyncOptions
from davsync.sync.ports import Source, StateStore
from davsync.sync.values import SyncResult, Target

if TYPE_CHECKING:
    from davsync.dav.client import DavClient
    from davsync.dav.collection import Collection
    from davsync.dav.earlyprobe import EarlyProbe


def _vdir(target: Target) -> Source:
    from davsync.sources.vdir import VdirSource

    return VdirSource(target.path, target.kind)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncRun:
    """Sync `targets` through `client` into `store`. `create`: a collection the account does
    not have yet may be created (`[server] create`)."""

    client: DavClient
    store: StateStore
    options: SyncOptions
    create: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    source_for: Callable[[Target], Source] = _vdir
    now: Callable[[], datetime] = _utc_now

    def run(self, targets: list[Target], result: SyncResult | None = None) -> SyncResult:
        """Each collection in turn; a collection-level failure is its report's error and the
        others still run. Fatal errors (unreachable, refused credentials) propagate."""
        result = result if result is not None else SyncResult()
        self.start_probes(targets)
        for target in targets:
            if self.cancel.is_set():
                result.cancelled = True
                break
            result.collections[target.report_key] = self._sync_one(target)
        result.cancelled |= self.cancel.is_set()
        return result

    def start_probes(self, targets: list[Target]) -> None:
        """Open every known collection and have a worker settle its probe: the early answer
        where it is usable, else a probe through the client (retries, credential refresh).
        A target whose probe is already answered (its kind's listing carried the getctag)
        is only opened."""
        for target in targets:
            if target.url is None or target.remote is not None:
                continue
            known = self.store.collection(target.key)
            if known is not None:  # what server this is, before anything is asked of it
                self.client.learn(identify(sync_token=known.sync_token))
            marked = known is not None and known.modified is not None
            remote = open_collection(self.client, target.url, target.kind,
                                                 displayname=target.name)
            target.remote = remote
            if target.early_sync is not None:
                remote.present_early_sync(target.early_sync)
            if target.probe is None:
                target.probe = self.client.executor().submit(_settle_probe, remote,
                                                             target.early, marked)

    def _sync_one(self, target: Target) -> CollectionReport:
        remote, probe = target.remote, target.probe
        target.remote, target.probe = None, None  # a target is run once per start_probes
        if remote is None:
            create = self.create and not self.options.pull_only
            remote = find_collection(self.client,
                target.kind, target.name, displayname=target.name, create=create
            )
            self.store.save_collection(target.key, target.kind, remote.url)
            if remote.loaded_probe is not None:  # discovery already read the change marker
                probe = Future()
                probe.set_result(remote.loaded_probe)
        ctx = Context(target.key, self.source_for(target), remote, self.store, self.options,
                      self.now, self.cancel)
        engine = CollectionSync(ctx)
        try:
            report = engine.run(probe)
        except (DavError, SourceError) as exc:  # a collection-level failure; others still run
            report = engine.report
            report.error(target.name, str(exc))
        self.store.save_result(
            target.key, self.now().isoformat(timespec="seconds"), report.as_json()
        )
        return report


def _settle_probe(remote: Collection, early: EarlyProbe | None, marked: bool) -> Probe:
    answer = early.answer() if early is not None else None
    found = (remote.read_probe(answer.status, answer.content, date=answer.date,
                               seconds=answer.seconds) if answer is not None else None)
    return found if found is not None else remote.probe(marked=marked)
