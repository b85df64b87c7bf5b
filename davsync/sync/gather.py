"""What changed on each side of one collection, without deciding anything.

The device side: new, changed and deleted items, with the UID repairs they need (planned, not
written here). The server side: a probe, then a listing of changed hrefs, then the downloads,
streamed a few multigets at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from davsync.core.item import ParseError, new_uid, parse_item, with_uid
from davsync.core.plan import Action, Op, Seen
from davsync.core.synced import Synced
from davsync.dav.api import DavError, Fetched, InvalidSyncToken, Probe
from davsync.dav.syncstream import SyncStream
from davsync.sources.base import ItemTooLarge, SourceError, StoreMissing
from davsync.state.store import Refusal
from davsync.sync.context import Context

log = logging.getLogger("davsync.engine")


@dataclass
class DeviceSide:
    """uid -> new/changed version or None (deleted), and the UID repairs to carry out first."""

    changes: dict[str, Seen | None]
    repairs: list[Action] = field(default_factory=list)


@dataclass
class ServerView:
    changes: dict[str, Seen | None]  # deletions from the listing; downloads are added later
    ctag: str | None
    token: str | None
    read: bool  # False: the probe said nothing changed, so marks stay as they are
    failed: set[str] = field(default_factory=set)  # hrefs to look at again next run
    to_fetch: dict[str, str | None] = field(default_factory=dict)  # href -> listed etag
    stream: SyncStream | None = None  # a sync-collection answer that carries the data
    modified: str | None = None  # the settled getlastmodified read before the listing


class DeviceGather:
    """New, changed and deleted device items; unreadable ones, and ones the server refused in
    this very content, are reported and kept out (never taken for deleted)."""

    def __init__(self, ctx: Context, state: dict[str, Synced]) -> None:
        self.ctx = ctx
        self.state = state
        self.owner: dict[str, str] = {}  # uid -> file name that holds it
        self.side = DeviceSide({})
        self.refused: dict[str, Refusal] = {}
        self.still_refused = 0  # device items the server refused in this very content

    def gather(self) -> DeviceSide:
        ctx = self.ctx
        scan = self._scan()
        for name, why in sorted(ctx.source.skipped.items()):
            ctx.report.error(ctx.device_path(name), why)
        self.refused = ctx.store.refused(ctx.name)
        by_file = {rec.filename: rec for rec in self.state.values() if rec.filename}
        changed_files = []
        for name, sig in sorted(scan.items()):
            rec = by_file.get(name)
            if rec is not None and rec.device_sig == sig:
                self.owner[rec.uid] = name
            else:
                changed_files.append((name, sig, rec))
        for name, sig, rec in changed_files:
            self._take(name, sig, rec)
        changes = self.side.changes
        for uid, rec in self.state.items():
            if rec.filename is not None and uid not in self.owner and not self._held(rec):
                changes[uid] = None
        ctx.store.clear_refused(ctx.name, [u for u in self.refused if u not in self.owner])
        return self.side

    def _held(self, rec: Synced) -> bool:
        """A synced item the scan left out but still holds (reported as skipped): kept, as an
        unreadable file is, never taken for deleted."""
        source = self.ctx.source
        return source.partial or rec.filename in source.skipped

    def _take(self, name: str, sig: str, rec: Synced | None) -> None:
        seen = self._read(name, sig, rec)
        if seen is None:
            if rec is not None:
                self.owner.setdefault(rec.uid, name)  # unreadable: never treat as deleted
            return
        assert seen.item.uid is not None
        self.owner[seen.item.uid] = name
        if not self._still_refused(seen):
            self.side.changes[seen.item.uid] = seen

    def _scan(self) -> dict[str, str]:
        """The device store's items. A store that is missing is created empty only when no
        item was ever synced from it; otherwise StoreMissing stops the collection, since an
        absent folder read as empty would delete every item on the server."""
        try:
            return self.ctx.source.scan()
        except StoreMissing:
            if any(rec.filename is not None for rec in self.state.values()):
                raise
        self.ctx.source.create_store()
        return {}

    def _still_refused(self, seen: Seen) -> bool:
        """True (and reported) when the server already refused this very content."""
        refusal = self.refused.get(seen.item.uid or "")
        if refusal is None or refusal.hash != seen.item.hash:
            return False
        self.ctx.report.error(self.ctx.device_path(seen.ref), f"still {refusal.reason}")
        self.still_refused += 1
        return True

    def _read(self, name: str, sig: str, rec: Synced | None) -> Seen | None:
        """The item in file `name`; one without a UID, or with a UID another file holds in
        other content, gets a new UID and a REPAIR_UID action that writes it back."""
        ctx = self.ctx
        where = ctx.device_path(name)
        limit = ctx.options.max_item_bytes
        try:
            item = parse_item(ctx.source.read(name, limit), ctx.source.kind)
        except ItemTooLarge as exc:
            ctx.report.error(where, f"{_mib(exc.size)}, over the {_mib(limit)} davsync sends "
                             "for one item; not uploaded, and nothing deleted. Make it smaller "
                             "(e.g. a smaller photo)")
            return None
        except (ParseError, SourceError) as exc:
            ctx.report.error(where, f"cannot parse, left untouched: {exc}")
            return None
        if item.uid is not None and item.uid in self.owner:
            if self._same_as_owner(item.uid, item.hash):
                ctx.report.error(where, f"duplicate of {self.owner[item.uid]} (same UID and "
                                 "content); not synced, left untouched")
                return None
            log.info("%s: UID %s also in %s; giving this copy a new UID", where, item.uid,
                     self.owner[item.uid])
        elif item.uid is None:
            log.info("%s: no UID; assigning one and writing it back", where)
        else:
            return Seen(name, sig, item)
        repaired = Seen(name, sig, with_uid(item, new_uid()))
        assert repaired.item.uid is not None
        self.side.repairs.append(Action(Op.REPAIR_UID, repaired.item.uid, device=repaired,
                                        base=rec))
        return repaired

    def _same_as_owner(self, uid: str, content_hash: str) -> bool:
        other = self.side.changes.get(uid)
        if other is not None:
            return other.item.hash == content_hash
        return uid in self.state and self.state[uid].hash == content_hash


def after_repairs(side: DeviceSide, repaired: dict[str, Seen | None]) -> dict[str, Seen | None]:
    """The device changes once the UID repairs ran: `repaired` maps a repair's UID to the item
    as written (its new sig), or None when writing it failed (reported): then that item is left
    out, and what its file was synced as stays as it was (never taken for deleted)."""
    changes = dict(side.changes)
    for action in side.repairs:
        written = repaired.get(action.uid)
        if written is not None:
            changes[action.uid] = written
            continue
        changes.pop(action.uid, None)
        base = action.base
        if base is not None and base.uid in changes and changes[base.uid] is None:
            del changes[base.uid]
    return changes


class ServerGather:
    """What changed on the server, without the content yet (`listing`), then the content
    (`items`, streamed)."""

    def __init__(self, ctx: Context, state: dict[str, Synced], exists: bool) -> None:
        self.ctx = ctx
        self.state = state
        self.exists = exists  # False once the collection is found gone (or never was there)
        self.by_href = {rec.href: rec for rec in state.values() if rec.href}
        self.wrote_remote = False  # set when a server item had to get a UID
        self._stream: SyncStream | None = None
        self._closed = False

    def close(self) -> None:
        """Stop reading a streamed answer the run did not (or not fully) consume; one opened
        after this (the run stopped while the listing was under way) is stopped at once."""
        self._closed = True
        if self._stream is not None:
            self._stream.close()

    def listing(self, probe_future: Future[Probe] | None = None) -> ServerView:
        """Deletions by UID, changed hrefs to download. Probe first, so that a change made
        while we list is seen by the next run."""
        ctx = self.ctx
        coll = ctx.store.collection(ctx.name)
        old_ctag = coll.ctag if coll else None
        old_token = coll.sync_token if coll else None
        old_modified = coll.modified if coll else None
        pending = ctx.store.pending(ctx.name)
        if not self.exists:
            return ServerView({}, None, None, read=False)
        try:
            probe = probe_future.result() if probe_future else ctx.remote.probe()
        except DavError as exc:
            if exc.status != 404:
                raise
            log.warning("%s: collection %s is gone from the server", ctx.name, ctx.remote.url)
            self.exists = False
            gone: dict[str, Seen | None] = {u: None for u, r in self.state.items() if r.href}
            return ServerView(gone, None, None, read=True)
        if probe.wants_ctag_probe(old_ctag, old_token, old_modified):
            # Changed so lately that its time cannot be the next run's mark: the getctag
            # will be (read before the listing, as every mark), so that run is one probe.
            probe = ctx.remote.probe()
        if probe.shows_no_change(old_ctag, old_token, old_modified) and not pending:
            if probe.mark is not None and probe.mark != old_modified:
                ctx.store.save_modified(ctx.name, probe.mark)
            return ServerView({}, old_ctag, old_token, read=False)
        if old_token is not None or (not self.state and not pending):
            try:
                stream = self._open_stream(old_token)
            except InvalidSyncToken:
                _token_lost(ctx.name)
                old_token = None
            else:
                if stream is not None:
                    # hrefs to look at again that the answer does not carry: multiget after it
                    to_fetch = dict.fromkeys(pending)
                    return ServerView({}, probe.ctag, None, read=True, stream=stream,
                                      to_fetch=to_fetch, modified=probe.mark)
        changed, deleted, token = self._list(old_token)
        changed.update({h: None for h in pending if h not in changed and h not in deleted})
        gone = {self.by_href[href].uid: None for href in deleted}
        return ServerView(gone, probe.ctag, token, read=True, to_fetch=changed,
                          modified=probe.mark)

    def _open_stream(self, token: str | None) -> SyncStream | None:
        """What changed since `token` (None: a first pairing, nothing synced) and the data,
        in one streamed request where the server is known to answer it well. A failure
        before any item came falls back, once, to the listing + multiget path of this same
        run; a token the server no longer knows is raised (a full listing is needed)."""
        try:
            stream = self._stream = self.ctx.remote.sync_with_data(token)
        except InvalidSyncToken:
            raise
        except DavError as exc:
            log.info("%s: one-request download refused (%s); listing, then downloading in "
                     "batches", self.ctx.name, exc)
            return None
        if stream is not None and self._closed:
            stream.close()
        return stream

    def _list(self, token: str | None) -> tuple[dict[str, str | None], set[str], str | None]:
        remote, by_href = self.ctx.remote, self.by_href
        if remote.supports_sync_collection():
            try:
                delta = remote.sync(token)
                if token is not None:
                    changed = {h: e for h, e in delta.changed.items()
                               if e is None or by_href.get(h) is None or by_href[h].etag != e}
                    return changed, set(delta.deleted) & set(by_href), delta.sync_token
            except InvalidSyncToken:
                _token_lost(self.ctx.name)
                delta = remote.sync(None)
            listing: dict[str, str | None] = dict(delta.changed)
            new_token: str | None = delta.sync_token
        else:
            listing, new_token = remote.list_etags(), None
        changed = {h: e for h, e in listing.items()
                   if e is None or h not in by_href or by_href[h].etag != e}
        return changed, set(by_href) - set(listing), new_token

    def items(self, view: ServerView) -> Iterator[tuple[str, Seen | None]]:
        """The streamed answer's items (`view.stream`), then a download of `view.to_fetch` (a
        few multigets in flight while the caller works on what came before): (uid, version)
        per usable item, (uid, None) for one that is gone."""
        gone = {uid for uid, seen in view.changes.items() if seen is None}
        owner = {r.uid: r.href for r in self.state.values() if r.href and r.uid not in gone}
        if view.stream is not None:
            yield from self._streamed(view, owner)
        if view.to_fetch:
            for fetched in self.ctx.remote.multiget(sorted(view.to_fetch)):
                yield from self._take(fetched, owner, view)

    def _streamed(
        self, view: ServerView, owner: dict[str, str]
    ) -> Iterator[tuple[str, Seen | None]]:
        """The items of a sync-collection answer that carried their data; those it listed
        without data are left in `view.to_fetch` for a multiget. Its sync-token becomes the
        view's only once every item of it was handed out."""
        assert view.stream is not None
        try:
            for fetched in view.stream:
                wanted = fetched.href in view.to_fetch  # pending: taken whatever its etag
                view.to_fetch.pop(fetched.href, None)
                if fetched.data is None and fetched.status is None:
                    view.to_fetch[fetched.href] = fetched.etag
                    continue
                known = self.by_href.get(fetched.href)
                if (not wanted and fetched.data is not None and known is not None
                        and fetched.etag is not None and known.etag == fetched.etag):
                    continue  # this version is the one synced (our own write, listed back)
                yield from self._take(fetched, owner, view)
        finally:
            view.stream.close()
        ctag, view.token = view.stream.marks()
        view.ctag = view.ctag or ctag  # a first pairing's, read beside it
        if view.token is None:  # changed while first downloaded: no mark fits the items
            view.modified = None

    def _take(
        self, fetched: Fetched, owner: dict[str, str], view: ServerView
    ) -> Iterator[tuple[str, Seen | None]]:
        href = fetched.href
        if fetched.data is None:
            if fetched.status == 404:  # deleted since the listing: planned as a deletion
                if href in self.by_href:
                    yield self.by_href[href].uid, None
            else:
                self.ctx.report.error(href, f"cannot download: {fetched.error}")
                view.failed.add(href)
            return
        seen = self._parse(href, fetched.etag, fetched.data, owner, view)
        if seen is not None:
            assert seen.item.uid is not None
            owner[seen.item.uid] = href
            yield seen.item.uid, seen

    def _parse(
        self, href: str, etag: str | None, data: bytes, owner: dict[str, str], view: ServerView
    ) -> Seen | None:
        ctx = self.ctx
        try:
            item = parse_item(data, ctx.source.kind)
        except ParseError as exc:
            ctx.report.error(href, f"cannot parse server copy, left untouched: {exc}")
            view.failed.add(href)  # looked at (and reported) again next run
            return None
        if item.uid is not None and owner.get(item.uid, href) != href:
            ctx.report.error(href, f"UID {item.uid} is also at {owner[item.uid]} on the "
                             "server; not synced, left untouched")
            view.failed.add(href)
            return None
        if item.uid is None and ctx.options.pull_only:
            ctx.report.error(href, "has no UID; it gets one (written to the server) when "
                             "the daemon's mode is \"both\" again")
            view.failed.add(href)
            return None
        if item.uid is None:
            item = with_uid(item, new_uid())
            try:
                etag = ctx.remote.update(href, item.data, etag)
            except DavError as exc:
                ctx.report.error(href, f"has no UID and assigning one failed: {exc}")
                view.failed.add(href)
                return None
            self.wrote_remote = True
        return Seen(href, etag, item)


def _token_lost(name: str) -> None:
    log.info("%s: sync token no longer valid; doing a full listing", name)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
