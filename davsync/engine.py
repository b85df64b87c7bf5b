"""One sync run of one collection: gather changes, plan, execute, record.

Cost model: an unchanged collection costs one PROPFIND (the ctag/sync-token probe) and a stat
of each device file; only changed items are read, parsed, downloaded or uploaded.

Crash safety: each item's outcome is recorded the moment it happens; the collection's ctag and
sync token are saved only after everything they covered was applied. A run killed at any
instant is therefore followed by one that re-lists the same server changes and finds most of
them already applied (same etag, or same content on both sides: recorded, not duplicated).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime

from davsync.core.item import Item, ParseError, new_uid, parse_item, title, with_uid
from davsync.core.plan import (
    Action,
    Changes,
    Op,
    Seen,
    copy_uid,
    mass_deletion,
    plan,
    resolve_conflicts,
)
from davsync.core.policy import ConflictPolicy
from davsync.core.synced import Synced
from davsync.dav.api import (
    DavCollection,
    DavError,
    InvalidSyncToken,
    PreconditionFailed,
    Probe,
)
from davsync.report import CollectionReport
from davsync.sources.base import (
    ItemTooLarge,
    Source,
    SourceError,
    StoreMissing,
    StoreUnavailable,
)
from davsync.state.store import Refusal, StateStore

log = logging.getLogger(__name__)
_RECORD_BATCH = 200
# Downloaded items applied at a time when nothing is deleted (see `_stream`): about one multiget
# batch, so a pairing holds a few batches in memory, not the whole collection.
_STREAM_CHUNK = 50
# The largest item davsync uploads. A contact with a good photo is a few hundred KB; a 50 MB
# vCard is a mistake that would be re-sent, and time out, on every run.
MAX_ITEM_BYTES = 10 * 1024 * 1024
# Answers to a PUT that say "not this item" (not "not now", not "not this collection"): the
# item is remembered as refused and not sent again until its content changes.
_REFUSED_STATUSES = frozenset({400, 413, 415, 422})


@dataclass(frozen=True)
class SyncOptions:
    conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    allow_mass_delete: bool = False
    concurrency: int = 4
    device_label: str = "this device"
    max_item_bytes: int = MAX_ITEM_BYTES


# What a worker returns for the main thread to record: a record, a forget, or nothing.
Outcome = tuple[str, Synced | None, str | None]  # (uid, record or None = forget, text)

# Characters that vCard/iCalendar text escaping gives a meaning to: a server that re-serializes
# what it stores may change a UID holding them (Radicale stores UID:a\b as a\\b and UID:a,b as a).
_ESCAPED_IN_TEXT = frozenset("\\,;\n\r")


@dataclass(frozen=True)
class _Written:
    """An item this run PUT: what was sent and what the PUT answered, to check against what the
    server then lists (`_verify_writes`)."""

    uid: str
    device: Seen
    etag: str | None
    created: bool  # with If-None-Match: * (a create), not If-Match (an update)


@dataclass
class _ServerView:
    changes: dict[str, Seen | None]  # deletions from the listing; downloads are added later
    ctag: str | None
    token: str | None
    read: bool  # False: the probe said nothing changed, so marks stay as they are
    failed: set[str] = field(default_factory=set)  # hrefs to look at again next run
    to_fetch: dict[str, str | None] = field(default_factory=dict)  # href -> listed etag


class CollectionSync:
    """Syncs one device source with one DAV collection, recording into `store` as `name`."""

    def __init__(
        self,
        name: str,
        source: Source,
        remote: DavCollection,
        store: StateStore,
        options: SyncOptions,
        now: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.source = source
        self.remote = remote
        self.store = store
        self.options = options
        self.now = now
        self.report = CollectionReport()
        self._wrote_remote = False
        self._exists = remote.exists
        self._recheck: set[str] = set()  # hrefs to compare again next run (thread-safe add)
        self._extra: list[Outcome] = []  # outcomes of follow-up actions taken in a worker
        self._pending_records: list[Outcome] = []
        self._conflicted: dict[str, Action] = {}  # uid -> its CONFLICT, to name it in reports
        self._refused: dict[str, Refusal] = {}  # uid -> refused content, from the state
        self._new_refusals: list[tuple[str, Refusal]] = []  # appended by workers
        self._known: set[str] = set()  # UIDs synced or on the device (see resolve_conflicts)
        self._written: dict[str, _Written] = {}  # href -> what this run PUT there

    # ---- gathering ---------------------------------------------------------------------

    def device_changes(self, state: dict[str, Synced]) -> Changes:
        """New, changed and deleted device items; unreadable ones, and ones the server refused
        in this very content, are reported and kept out (never taken for deleted)."""
        scan = self._scan(state)
        for name, why in sorted(self.source.skipped.items()):
            self.report.error(f"{self.source.location}/{name}", why)
        self._refused = self.store.refused(self.name)
        by_file = {rec.filename: rec for rec in state.values() if rec.filename}
        owner: dict[str, str] = {}  # uid -> file name that holds it
        changes: dict[str, Seen | None] = {}
        changed_files = []
        for name, sig in sorted(scan.items()):
            rec = by_file.get(name)
            if rec is not None and rec.device_sig == sig:
                owner[rec.uid] = name
            else:
                changed_files.append((name, sig, rec))
        for name, sig, rec in changed_files:
            seen = self._read_device(name, sig, owner, changes, state)
            if seen is not None and self._still_refused(seen):
                assert seen.item.uid is not None
                owner[seen.item.uid] = name
                continue
            if seen is None:
                if rec is not None:
                    owner.setdefault(rec.uid, name)  # unreadable: never treat as deleted
                continue
            assert seen.item.uid is not None
            owner[seen.item.uid] = name
            changes[seen.item.uid] = seen
        for uid, rec in state.items():
            if rec.filename is not None and uid not in owner:
                changes[uid] = None
        self.store.clear_refused(self.name, [u for u in self._refused if u not in owner])
        return changes

    def _scan(self, state: dict[str, Synced]) -> dict[str, str]:
        """The device store's items. A store that is missing is created empty only when no
        item was ever synced from it; otherwise StoreMissing stops the collection, since an
        absent folder read as empty would delete every item on the server."""
        try:
            return self.source.scan()
        except StoreMissing:
            if any(rec.filename is not None for rec in state.values()):
                raise
        self.source.create_store()
        return {}

    def _still_refused(self, seen: Seen) -> bool:
        """True (and reported) when the server already refused this very content."""
        refusal = self._refused.get(seen.item.uid or "")
        if refusal is None or refusal.hash != seen.item.hash:
            return False
        self.report.error(seen.ref, f"still {refusal.reason}")
        return True

    def _read_device(
        self, name: str, sig: str, owner: dict[str, str], changes: dict[str, Seen | None],
        state: dict[str, Synced],
    ) -> Seen | None:
        where = f"{self.source.location}/{name}"
        limit = self.options.max_item_bytes
        try:
            item = parse_item(self.source.read(name, limit), self.source.kind)
        except ItemTooLarge as exc:
            self.report.error(where, f"{_mib(exc.size)}, over the {_mib(limit)} davsync sends "
                              "for one item; not uploaded, and nothing deleted. Make it smaller "
                              "(e.g. a smaller photo)")
            return None
        except (ParseError, SourceError) as exc:
            self.report.error(where, f"cannot parse, left untouched: {exc}")
            return None
        if item.uid is not None and item.uid in owner:
            other = changes.get(item.uid)
            other_hash = other.item.hash if other else state[item.uid].hash \
                if item.uid in state else None
            if other_hash == item.hash:
                self.report.error(where, f"duplicate of {owner[item.uid]} (same UID and "
                                  "content); not synced, left untouched")
                return None
            log.info("%s: UID %s also in %s; giving this copy a new UID", where, item.uid,
                     owner[item.uid])
            item = with_uid(item, new_uid())
        elif item.uid is None:
            log.info("%s: no UID; assigning one and writing it back", where)
            item = with_uid(item, new_uid())
        else:
            return Seen(name, sig, item)
        try:
            sig = self.source.write(name, item.data, sig)
        except SourceError as exc:
            self.report.error(where, str(exc))
            return None
        return Seen(name, sig, item)

    def server_listing(
        self, state: dict[str, Synced], probe_future: Future[Probe] | None = None
    ) -> _ServerView:
        """What changed on the server, without the content yet: deletions by UID, changed
        hrefs to download. Probe first, so that a change made while we list is seen by the
        next run."""
        coll = self.store.collection(self.name)
        old_ctag = coll.ctag if coll else None
        old_token = coll.sync_token if coll else None
        pending = self.store.pending(self.name)
        if not self._exists:
            return _ServerView({}, None, None, read=False)
        try:
            probe = probe_future.result() if probe_future else self.remote.probe()
        except DavError as exc:
            if exc.status != 404:
                raise
            log.warning("%s: collection %s is gone from the server", self.name, self.remote.url)
            self._exists = False
            gone: dict[str, Seen | None] = {u: None for u, r in state.items() if r.href}
            return _ServerView(gone, None, None, read=True)
        if probe.shows_no_change(old_ctag, old_token) and not pending:
            return _ServerView({}, old_ctag, old_token, read=False)
        changed, deleted, token = self._list_server(state, old_token)
        changed.update({h: None for h in pending if h not in changed and h not in deleted})
        by_href = {rec.href: rec for rec in state.values() if rec.href}
        gone = {by_href[href].uid: None for href in deleted}
        return _ServerView(gone, probe.ctag, token, read=True, to_fetch=changed)

    def _list_server(
        self, state: dict[str, Synced], token: str | None
    ) -> tuple[dict[str, str | None], set[str], str | None]:
        by_href = {rec.href: rec for rec in state.values() if rec.href}
        if self.remote.supports_sync_collection():
            try:
                delta = self.remote.sync(token)
                if token is not None:
                    changed = {h: e for h, e in delta.changed.items()
                               if e is None or by_href.get(h) is None or by_href[h].etag != e}
                    return changed, set(delta.deleted) & set(by_href), delta.sync_token
            except InvalidSyncToken:
                log.info("%s: sync token no longer valid; doing a full listing", self.name)
                delta = self.remote.sync(None)
            listing: dict[str, str | None] = dict(delta.changed)
            new_token: str | None = delta.sync_token
        else:
            listing, new_token = self.remote.list_etags(), None
        changed = {h: e for h, e in listing.items()
                   if e is None or h not in by_href or by_href[h].etag != e}
        return changed, set(by_href) - set(listing), new_token

    def _server_items(
        self, state: dict[str, Synced], view: _ServerView
    ) -> Iterator[tuple[str, Seen | None]]:
        """Download `view.to_fetch` (a few multigets in flight while the caller works on what
        came before): (uid, version) per usable item, (uid, None) for one that is gone."""
        if not view.to_fetch:
            return
        by_href = {rec.href: rec for rec in state.values() if rec.href}
        gone = {uid for uid, seen in view.changes.items() if seen is None}
        owner = {r.uid: r.href for r in state.values() if r.href and r.uid not in gone}
        for fetched in self.remote.multiget(sorted(view.to_fetch)):
            href = fetched.href
            if fetched.data is None:
                if fetched.status == 404:  # deleted since the listing: planned as a deletion
                    if href in by_href:
                        yield by_href[href].uid, None
                else:
                    self.report.error(href, f"cannot download: {fetched.error}")
                    view.failed.add(href)
                continue
            seen = self._parse_server(href, fetched.etag, fetched.data, owner, view)
            if seen is not None:
                assert seen.item.uid is not None
                owner[seen.item.uid] = href
                yield seen.item.uid, seen

    def _parse_server(
        self, href: str, etag: str | None, data: bytes, owner: dict[str, str], view: _ServerView
    ) -> Seen | None:
        try:
            item = parse_item(data, self.source.kind)
        except ParseError as exc:
            self.report.error(href, f"cannot parse server copy, left untouched: {exc}")
            view.failed.add(href)  # looked at (and reported) again next run
            return None
        if item.uid is not None and owner.get(item.uid, href) != href:
            self.report.error(href, f"UID {item.uid} is also at {owner[item.uid]} on the server; "
                              "not synced, left untouched")
            view.failed.add(href)
            return None
        if item.uid is None:
            item = with_uid(item, new_uid())
            try:
                etag = self.remote.update(href, item.data, etag)
            except DavError as exc:
                self.report.error(href, f"has no UID and assigning one failed: {exc}")
                view.failed.add(href)
                return None
            self._wrote_remote = True
        return Seen(href, etag, item)

    # ---- the run -----------------------------------------------------------------------

    def run(self, probe: Future[Probe] | None = None) -> CollectionReport:
        """`probe`: this collection's probe already in flight (the composition root sends every
        collection's probe before it imports the rest of a run); otherwise it is sent here."""
        if self.store.collection(self.name) is None:
            self.store.save_collection(self.name, self.source.kind, self.remote.url)
        try:
            return self._run(probe)
        except StoreUnavailable as exc:  # nothing planned, nothing done, the marks stay
            self.report.error(self.source.location, str(exc))
            return self.report

    def _run(self, probe: Future[Probe] | None) -> CollectionReport:
        # The probe (often the whole cost of a no-op run) is sent first and overlaps loading
        # the state and scanning the device.
        with ThreadPoolExecutor(max_workers=1) as pool:
            if probe is None and self._exists:
                probe = pool.submit(self.remote.probe)
            state = self.store.items(self.name)
            server_future = pool.submit(self.server_listing, state, probe)
            device = self.device_changes(state)
            server = server_future.result()
        self._known = set(state) | set(device)
        if None in device.values() or None in server.changes.values():
            for uid, seen in self._server_items(state, server):
                server.changes[uid] = seen
            done = self._plan_and_execute(state, device, server.changes)
        else:
            done = self._stream(state, device, server)
        if not done:  # stopped for safety: the marks stay, so the next run sees it all again
            return self.report
        self.source.flush()
        self._save_marks(server)
        return self.report

    def _stream(self, state: dict[str, Synced], device: Changes, server: _ServerView) -> bool:
        """Nothing is deleted on either side, so the mass-deletion guard has nothing to stop:
        apply each downloaded chunk while the next multigets are in flight. Memory then stays
        at a few batches whatever the collection holds (pairing 1 000 contacts with 150 KB
        photos: 406 MB peak when everything was downloaded before planning), and writing
        files overlaps downloading. Items found gone only while downloading are planned last,
        under the guard; False when it stopped them."""
        handled: set[str] = set()
        late: dict[str, Seen | None] = {}  # gone between the listing and the download
        chunk: dict[str, Seen | None] = {}
        for uid, seen in self._server_items(state, server):
            if seen is None:
                late[uid] = None
                continue
            late.pop(uid, None)
            chunk[uid] = seen
            if len(chunk) >= _STREAM_CHUNK:
                self._apply_chunk(state, device, chunk)
                handled |= chunk.keys()
                chunk = {}
        self._apply_chunk(state, device, chunk)
        handled |= chunk.keys()
        rest = {uid: d for uid, d in device.items() if uid not in handled}
        return self._plan_and_execute(
            state, rest, {u: s for u, s in late.items() if u not in handled})

    def _apply_chunk(
        self, state: dict[str, Synced], device: Changes, chunk: dict[str, Seen | None]
    ) -> None:
        """Plan and do the downloaded chunk's UIDs: with a version on both sides where the
        device changed too, so each decision is the one the whole-collection plan would make."""
        if chunk:
            self._plan_and_execute(state, {u: device[u] for u in chunk if u in device}, chunk)

    def _plan_and_execute(self, state: dict[str, Synced], device: Changes, server: Changes
                          ) -> bool:
        """False when the mass-deletion guard stopped it (reported as an error)."""
        planned = plan(state, device, server)
        self.report.conflicts += sum(1 for a in planned if a.op is Op.CONFLICT)
        self._tell_conflicts(planned)
        actions = resolve_conflicts(planned, self.options.conflict, copy_uid, self._note,
                                    self._known)
        device_count = len([r for r in state.values() if r.filename])
        server_count = len([r for r in state.values() if r.href])
        guard = mass_deletion(actions, device_count, server_count)
        if guard and not self.options.allow_mass_delete:
            self.report.error(self.name, guard)
            return False
        self._execute(actions)
        return True

    def _tell_conflicts(self, planned: list[Action]) -> None:
        """Name each item changed on both sides and say where each version went; keep-both's
        copy is named once it exists (`_create_local`)."""
        for action in planned:
            if action.op is not Op.CONFLICT:
                continue
            self._conflicted[action.uid] = action
            d, s = _seen(action.device), _seen(action.server)
            if self.options.conflict == "server-wins":
                self.report.conflict(self._label(d), f"{action.reason}; kept the server's version "
                                     f"(conflict = \"server-wins\"), it replaced this device's")
            elif self.options.conflict == "device-wins":
                self.report.conflict(self._label(d), f"{action.reason}; kept this device's "
                                     f"version (conflict = \"device-wins\"), it replaced {s.ref} "
                                     "on the server")

    def _label(self, seen: Seen, name: str | None = None) -> str:
        """A device item as people know it: its file and its FN or SUMMARY."""
        what = title(seen.item)
        where = f"{self.source.location}/{name or seen.ref}"
        return f"{where} ({what})" if what else where

    def _note(self, action: Action) -> str:
        when = self.now().strftime("%Y-%m-%d %H:%M UTC")
        return (f"davsync: conflicting copy of {action.uid}, kept on {when}: this is "
                f"{self.options.device_label}'s version ({action.reason}); the other version "
                "kept the original")

    def _execute(self, actions: list[Action]) -> None:
        if not self._exists:
            creates = [a for a in actions if a.op is Op.CREATE_REMOTE]
            if creates and self.remote.can_bulk_create() and self._bulk_create(creates):
                actions = [a for a in actions if a.op is not Op.CREATE_REMOTE]
            else:
                self.remote.ensure_exists()
            self._exists = True
        # A conflict's device copy goes first: its UPDATE_LOCAL then overwrites a version that
        # is already safe in a file of its own (a kill in between loses nothing).
        copies = [a for a in actions if a.op is Op.CREATE_COPY]
        local = [a for a in actions if not _touches_remote(a)]
        remote = [a for a in actions if _touches_remote(a) and a.op is not Op.CREATE_COPY]
        for action in [*copies, *local]:
            self._apply(action)
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            for outcome in pool.map(self._perform_safely, remote):
                self._record(outcome)
        self._commit()

    def _bulk_create(self, creates: list[Action]) -> bool:
        """One request for a new collection's first upload; False when the server refused
        that body (one bad or too large item spoils it): then it goes item by item, so only
        the items the server refuses are reported, each on its own."""
        items = [(a.uid, _seen(a.device).item.data) for a in creates]
        try:
            created = self.remote.bulk_create(items)
        except DavError as exc:
            if exc.status not in _REFUSED_STATUSES:
                raise
            log.info("%s: one-request upload refused (%s); uploading item by item", self.name,
                     exc)
            return False
        self._wrote_remote = True
        rows = []
        for action in creates:
            d = _seen(action.device)
            where = created.get(action.uid)
            if where is None:
                self.report.error(d.ref, "the server did not store it in the bulk upload")
                continue
            rows.append((Synced(action.uid, d.ref, d.tag, where.href, where.etag, d.item.hash),
                         d.item.text))
            self.report.count("uploaded")
        self.store.record_many(self.name, rows)
        return True

    def _apply(self, action: Action) -> None:
        self._record(self._perform_safely(action))

    def _perform_safely(self, action: Action) -> Outcome | None:
        try:
            return self._perform(action)
        except (DavError, SourceError) as exc:
            ref = (action.device.ref if action.device else None) or (
                action.base.filename if action.base else None) or action.uid
            self.report.error(ref, str(exc))
            if action.server is not None:  # its server version was not applied: next run
                self._recheck.add(action.server.ref)
            return None

    def _record(self, outcome: Outcome | None) -> None:
        """Queue an outcome; only ever called on the main thread (the state store is not
        shared with workers)."""
        while self._extra:
            self._pending_records.append(self._extra.pop())
        if outcome is not None:
            self._pending_records.append(outcome)
        if len(self._pending_records) >= _RECORD_BATCH:
            self._commit()

    def _commit(self) -> None:
        """Make the device writes durable (one directory fsync), then record their outcomes in
        one transaction. A crash before this point loses only records, never data: the next
        run finds the same content on both sides and records it then."""
        if not self._pending_records and not self._new_refusals:
            return
        self.source.flush()
        refusals, self._new_refusals = self._new_refusals, []
        with self.store.transaction():
            for uid, synced, text in self._pending_records:
                if synced is None:
                    self.store.forget(self.name, uid)
                else:
                    self.store.record(self.name, synced, text)
            for uid, refusal in refusals:
                self.store.refuse(self.name, uid, refusal)
            done = {uid for uid, _, _ in self._pending_records}
            self.store.clear_refused(self.name, done & self._refused.keys())
        self._pending_records.clear()

    def _perform(self, action: Action) -> Outcome | None:
        op, uid, d, s, base = action.op, action.uid, action.device, action.server, action.base
        if op is Op.RECORD:
            item = (d or _seen(s)).item
            filename = d.ref if d else _base(base).filename
            sig = d.tag if d else _base(base).device_sig
            href = s.ref if s else _base(base).href
            etag = s.tag if s else _base(base).etag
            return uid, Synced(uid, filename, sig, href, etag, item.hash), item.text
        if op is Op.FORGET:
            return uid, None, None
        if op is Op.CREATE_REMOTE:
            return self._create_remote(uid, _seen(d))
        if op is Op.UPDATE_REMOTE:
            return self._update_remote(action)
        if op is Op.DELETE_REMOTE:
            b = _base(base)
            try:
                self.remote.delete(_href(b), s.tag if s else b.etag)
            except PreconditionFailed:
                return self._retry_after_412(action)
            self._wrote_remote = True
            self.report.count("deleted_remote")
            return uid, None, None
        if op is Op.CREATE_LOCAL or op is Op.CREATE_COPY:
            return self._create_local(action)
        if op is Op.UPDATE_LOCAL:
            server = _seen(s)
            name = d.ref if d else _base(base).filename
            assert name is not None
            expect = d.tag if d else _base(base).device_sig
            sig = self.source.write(name, _file_bytes(server.item), expect)
            self.report.count("downloaded")
            return uid, Synced(uid, name, sig, server.ref, server.tag, server.item.hash), \
                server.item.text
        if op is Op.DELETE_LOCAL:
            b = _base(base)
            assert b.filename is not None
            self.source.delete(b.filename, d.tag if d else b.device_sig)
            self.report.count("deleted_local")
            return uid, None, None
        raise AssertionError(f"unplanned operation {op}")  # pragma: no cover

    def _create_remote(self, uid: str, d: Seen) -> Outcome | None:
        href = self.remote.href_for(uid)
        try:
            etag = self.remote.create(href, d.item.data)
        except PreconditionFailed:  # someone else's item got there first (or our retried PUT)
            return self._compare_with_server(uid, d, href)
        except DavError as exc:
            raise self._refusal(uid, d.item, exc) from None
        self._wrote_remote = True
        self._written[href] = _Written(uid, d, etag, created=True)
        self.report.count("uploaded")
        return uid, Synced(uid, d.ref, d.tag, href, etag, d.item.hash), d.item.text

    def _compare_with_server(self, uid: str, d: Seen, href: str) -> Outcome | None:
        """`href` holds something this run did not put there: fetch it and decide as for an
        item new on both sides (the same content is recorded, a different one is a conflict)."""
        fetched = next(iter(self.remote.multiget([href])), None)
        if fetched is None or fetched.data is None:
            self._recheck.add(href)
            raise DavError(f"{href} already exists on the server but cannot be read; it will be "
                           f"compared with {d.ref} on the next run")
        try:
            server = Seen(href, fetched.etag, parse_item(fetched.data, self.source.kind))
        except ParseError as exc:
            self._recheck.add(href)
            raise DavError(f"{href} already exists on the server and cannot be parsed: {exc}; "
                           f"{d.ref} was not uploaded") from None
        if server.item.uid != uid:
            self._recheck.add(href)
            raise DavError(f"{href} already holds another item (UID {server.item.uid}); "
                           f"{d.ref} was not uploaded")
        return self._settle(plan({}, {uid: d}, {uid: server}), uid,
                            Synced(uid, d.ref, d.tag, href, server.tag, ""))

    def _settle(self, planned: list[Action], uid: str, where: Synced) -> Outcome | None:
        """Carry out a plan made again for one UID after the server surprised a write; `where`
        stands in as the base of actions that have none (a conflict over an item both sides
        just added) so that a server-side action knows its href. Returns the outcome for
        `uid`; the others are queued for the main thread."""
        for _ in (a for a in planned if a.op is Op.CONFLICT):
            self.report.count("conflicts")
        self._tell_conflicts(planned)
        last: Outcome | None = None
        for action in resolve_conflicts(planned, self.options.conflict, copy_uid, self._note,
                                        self._known):
            if action.op in (Op.UPDATE_REMOTE, Op.DELETE_REMOTE) and action.server is None:
                raise DavError(f"{where.href} keeps changing on the server; retrying next run")
            if action.uid == uid and action.base is None:
                action = replace(action, base=where)
            outcome = self._perform(action)
            if action.uid == uid:
                last = outcome
            elif outcome is not None:
                self._extra.append(outcome)  # recorded by the main thread
        return last

    def _update_remote(self, action: Action) -> Outcome | None:
        d, b = _seen(action.device), _base(action.base)
        if_match = action.server.tag if action.server else b.etag
        try:
            etag = self.remote.update(_href(b), d.item.data, if_match)
        except PreconditionFailed:
            return self._retry_after_412(action)
        except DavError as exc:
            raise self._refusal(action.uid, d.item, exc) from None
        self._wrote_remote = True
        self._written[_href(b)] = _Written(action.uid, d, etag, created=False)
        self.report.count("updated")
        return action.uid, Synced(action.uid, d.ref, d.tag, _href(b), etag, d.item.hash), \
            d.item.text

    def _refusal(self, uid: str, item: Item, exc: DavError) -> DavError:
        """A failed upload's error; when the server refused the item itself, remember its
        content (recorded by the main thread) so that it is not sent again until it changes."""
        if exc.status not in _REFUSED_STATUSES:
            return exc
        hint = ("The server takes no item this large: make it smaller (e.g. a smaller photo)."
                if exc.status == 413 else "Correct what the server names (e.g. a malformed "
                "date or property) in your contacts or calendar app.")
        reason = (f"refused by the server ({exc}); not sent again until the file changes. "
                  f"{hint}")
        self._new_refusals.append((uid, Refusal(item.hash, reason)))
        return DavError(reason, exc.status)

    def _retry_after_412(self, action: Action) -> Outcome | None:
        """The server copy changed under us: fetch it and decide again; never overwrite blindly."""
        b = _base(action.base)
        fetched = next(iter(self.remote.multiget([_href(b)])), None)
        server: Seen | None = None
        if fetched is not None and fetched.data is not None:
            try:
                server = Seen(_href(b), fetched.etag, parse_item(fetched.data, self.source.kind))
            except ParseError as exc:
                raise DavError(f"{_href(b)} changed on the server and cannot be parsed: {exc}") \
                    from None
        device: Changes = {action.uid: action.device}
        return self._settle(plan({action.uid: b}, device, {action.uid: server}), action.uid, b)

    def _create_local(self, action: Action) -> Outcome:
        src = _seen(action.server if action.op is Op.CREATE_LOCAL else action.device)
        name, sig = self.source.create(action.uid, _file_bytes(src.item))
        if action.op is Op.CREATE_COPY:
            href = self.remote.href_for(action.uid)
            etag = self.remote.create(href, src.item.data)
            self._wrote_remote = True
            self._tell_copy(action, name, href)
            self._written[href] = _Written(action.uid, Seen(name, sig, src.item), etag, True)
            return action.uid, Synced(action.uid, name, sig, href, etag, src.item.hash), \
                src.item.text
        self.report.count("downloaded")
        return action.uid, Synced(action.uid, name, sig, src.ref, src.tag, src.item.hash), \
            src.item.text

    def _tell_copy(self, copy: Action, name: str, href: str) -> None:
        original = self._conflicted.get(copy.copy_of or "")
        if original is None:
            return
        d, s = _seen(original.device), _seen(original.server)
        self.report.conflict(
            self._label(d),
            f"{original.reason}; the server's version is in {self.source.location}/{d.ref} "
            f"({s.ref} on the server), this device's version is now a separate item in "
            f"{self.source.location}/{name} ({href} on the server)",
        )

    def _save_marks(self, server: _ServerView) -> None:
        """Remember how far the server was read; after our own writes, settle on a fresh mark
        so the next no-op run costs one probe, and keep foreign changes pending."""
        failed = set(server.failed) | self._recheck
        if not server.read and not self._wrote_remote:
            if failed:
                self.store.set_pending(self.name, self.store.pending(self.name) | failed)
            return
        ctag, token = server.ctag, server.token
        if self._wrote_remote and self.remote.supports_sync_collection():
            probe = self.remote.probe()
            try:
                delta = self.remote.sync(token)
            except InvalidSyncToken:
                delta = self.remote.sync(None)
            self._verify_writes(delta.changed)
            state = self.store.items(self.name)
            etags = {rec.href: rec.etag for rec in state.values() if rec.href}
            for href, etag in delta.changed.items():
                if href not in etags or etags[href] is None or etags[href] != etag:
                    failed.add(href)
            failed |= set(delta.deleted) & set(etags)
            ctag, token = probe.ctag, delta.sync_token
        elif self._wrote_remote:
            ctag = None  # cannot tell our writes from others': list again next run
        self.store.set_pending(self.name, failed)
        self.store.save_marks(self.name, ctag, token)


    # ---- checking our own writes ------------------------------------------------------------

    def _verify_writes(self, listed: Mapping[str, str | None]) -> None:
        """Check what this run PUT against the listing taken after it, before the marks make
        it 'synced': a PUT answered without an ETag (a server that rewrites what it stores
        may omit it) learns the server's etag now, not by a download next run; a create whose
        href lists another etag (a server that ignored If-None-Match let someone overwrite it,
        or overwrote theirs) is compared and, if different, is a conflict; a UID the server
        changed while storing it is reported. Costs nothing when each PUT's ETag is the listed
        one and the UID has nothing text escaping could change: one multiget per 50 others."""
        doubtful = {href: w for href, w in self._written.items()
                    if href in listed and (w.etag is None or listed[href] != w.etag
                                           or _ESCAPED_IN_TEXT & set(w.uid))}
        self._written.clear()
        if not doubtful:
            return
        for fetched in self.remote.multiget(sorted(doubtful)):
            written = doubtful.get(fetched.href)
            if written is None or fetched.data is None:
                continue  # listed again as pending below: looked at next run
            try:
                server = Seen(fetched.href, fetched.etag,
                              parse_item(fetched.data, self.source.kind))
            except ParseError:
                continue
            self._record(self._check_written(written, server))
        self._commit()

    def _check_written(self, written: _Written, server: Seen) -> Outcome | None:
        uid, d = written.uid, written.device
        if server.item.uid != uid:
            self.report.error(d.ref, f"the server changed the UID {uid!r} to "
                              f"{server.item.uid!r} when it stored {server.ref}; other devices "
                              "see it under that UID. Give the item a UID without \\ , ; to "
                              "avoid this")
            return uid, Synced(uid, d.ref, d.tag, server.ref, server.tag, d.item.hash), \
                d.item.text
        if server.item.hash == d.item.hash:  # ours, as the server stores it: learn its etag
            return uid, Synced(uid, d.ref, d.tag, server.ref, server.tag, d.item.hash), \
                d.item.text
        if not written.created:
            return None  # changed by someone after our update: downloaded next run
        log.warning("%s: %s holds other content than was just created there; treating it as "
                    "a conflict", self.name, server.ref)
        try:
            return self._settle(plan({}, {uid: d}, {uid: server}), uid,
                                Synced(uid, d.ref, d.tag, server.ref, server.tag, ""))
        except (DavError, SourceError) as exc:
            self.report.error(d.ref, str(exc))
            return None


def _file_bytes(item: Item) -> bytes:
    """What a device file gets: CRLF line ends as RFC 5545/6350 ask, even when the server's
    XML answer (multiget) turned them into LF."""
    text = item.text
    if "\r\n" not in text:
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _touches_remote(action: Action) -> bool:
    return action.op in (Op.CREATE_REMOTE, Op.UPDATE_REMOTE, Op.DELETE_REMOTE, Op.CREATE_COPY)


def _seen(seen: Seen | None) -> Seen:
    assert seen is not None
    return seen


def _base(base: Synced | None) -> Synced:
    assert base is not None
    return base


def _href(base: Synced) -> str:
    assert base.href is not None
    return base.href

