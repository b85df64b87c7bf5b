"""Carrying out planned actions: a table from `Op` to a handler, each returning a `Done`.

Handlers run on the main thread (device-side actions) or in a worker pool (server-side ones);
none writes shared state: what an action produced (records, hrefs to look at again, contents
the server refused, writes to verify, a re-plan after a 412) comes back as a value, and
`Executor` folds the values in on the main thread, the only one that touches the state store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from davsync.core.item import Item, ParseError, parse_item
from davsync.core.plan import Action, Changes, Op, Seen, plan
from davsync.core.synced import Synced
from davsync.dav.api import DavError, PreconditionFailed
from davsync.sources.base import SourceError, StoreUnavailable
from davsync.state.store import Refusal
from davsync.sync.context import REFUSED_STATUSES, Context, seen

log = logging.getLogger("davsync.engine")

# What the main thread records: (uid, record or None = forget, text).
Record = tuple[str, Synced | None, str | None]


@dataclass(frozen=True)
class Written:
    """An item this run PUT: what was sent and what the PUT answered, to check against what the
    server then lists (`marks.verify_writes`)."""

    uid: str
    device: Seen
    etag: str | None
    created: bool  # with If-None-Match: * (a create), not If-Match (an update)


@dataclass(frozen=True)
class Replan:
    """The server surprised a write (412, or a create where something already was): `actions`
    planned again for `uid` from what the server holds now; `where` stands in as the base of
    actions that have none (an item both sides just added), so a server-side one knows its
    href. Resolved and carried out by the main thread, as a follow-up."""

    uid: str
    actions: list[Action]
    where: Synced


@dataclass
class Done:
    """What one action produced."""

    records: list[Record] = field(default_factory=list)
    recheck: set[str] = field(default_factory=set)  # hrefs to compare again next run
    refusals: list[tuple[str, Refusal]] = field(default_factory=list)
    written: dict[str, Written] = field(default_factory=dict)  # href -> what was PUT there
    wrote_remote: bool = False
    replan: Replan | None = None
    repaired: Seen | None = None  # REPAIR_UID: the device item as written back
    skipped: bool = False  # not started: the run was cancelled


class Unsettled(DavError):
    """An action that could not be decided now; `href` is compared again next run."""

    def __init__(self, message: str, href: str) -> None:
        super().__init__(message)
        self.href = href


class Refused(DavError):
    """The server refused the item itself (`REFUSED_STATUSES`): its content is remembered so
    that it is not sent again until it changes."""

    def __init__(self, message: str, status: int | None, uid: str, refusal: Refusal) -> None:
        super().__init__(message, status)
        self.uid = uid
        self.refusal = refusal


def touches_remote(action: Action) -> bool:
    return action.op in (Op.CREATE_REMOTE, Op.UPDATE_REMOTE, Op.DELETE_REMOTE, Op.CREATE_COPY)


class Handlers:
    """One handler per `Op`; safe to call from worker threads (they only read `ctx` and
    report through its thread-safe report)."""

    def __init__(
        self, ctx: Context, tell_copy: Callable[[Action, str, str], None],
        flush: Callable[[], set[str]] | None = None,
    ) -> None:
        """`flush` makes the device writes so far durable and returns the names it could
        not complete (already reported); by default the source's own flush."""
        self.ctx = ctx
        self._tell_copy = tell_copy
        self._flush = flush or (lambda: set(ctx.source.flush()))
        self.table: dict[Op, Callable[[Action], Done]] = {
            Op.RECORD: self.record,
            Op.FORGET: self.forget,
            Op.CREATE_REMOTE: self.create_remote,
            Op.UPDATE_REMOTE: self.update_remote,
            Op.DELETE_REMOTE: self.delete_remote,
            Op.CREATE_LOCAL: self.create_local,
            Op.CREATE_COPY: self.create_copy,
            Op.UPDATE_LOCAL: self.update_local,
            Op.DELETE_LOCAL: self.delete_local,
            Op.REPAIR_UID: self.repair_uid,
        }

    def perform(self, action: Action) -> Done:
        """Carry out `action`; an item-level failure is reported and comes back as a value."""
        if self.ctx.cancelled():
            return Done(skipped=True)
        try:
            return self.table[action.op](action)
        except Refused as exc:  # a device item: named by its path, as the user finds it
            self.ctx.report.error(self.ctx.device_path(seen(action.device).ref), str(exc))
            done = Done(refusals=[(exc.uid, exc.refusal)])
        except Unsettled as exc:
            self._report(action, exc)
            done = Done(recheck={exc.href})
        except StoreUnavailable:
            raise  # the store as a whole, not this item: the collection stops (reported once)
        except (DavError, SourceError) as exc:
            self._report(action, exc)
            done = Done()
        if action.server is not None:  # its server version was not applied: next run
            done.recheck.add(action.server.ref)
        return done

    def _report(self, action: Action, exc: Exception) -> None:
        ref = (action.device.ref if action.device else None) or (
            action.base.filename if action.base else None) or action.uid
        self.ctx.report.error(ref, str(exc))

    # ---- both sides agree ------------------------------------------------------------------

    def record(self, action: Action) -> Done:
        uid, d, s, base = action.uid, action.device, action.server, action.base
        item = (d or seen(s)).item
        filename = d.ref if d else _base(base).filename
        sig = d.tag if d else _base(base).device_sig
        href = s.ref if s else _base(base).href
        etag = s.tag if s else _base(base).etag
        return Done([(uid, Synced(uid, filename, sig, href, etag, item.hash), item.text)])

    def forget(self, action: Action) -> Done:
        return Done([(action.uid, None, None)])

    # ---- the device side -------------------------------------------------------------------

    def repair_uid(self, action: Action) -> Done:
        """Write a device item's new UID back to its file (it had none, or another's)."""
        d, ctx = seen(action.device), self.ctx
        try:
            sig = ctx.source.write(d.ref, d.item.data, d.tag)
        except SourceError as exc:
            ctx.report.error(ctx.device_path(d.ref), str(exc))
            return Done()
        return Done(repaired=Seen(d.ref, sig, d.item))

    def create_local(self, action: Action) -> Done:
        src = seen(action.server)
        name, sig = self.ctx.source.create(action.uid, file_bytes(src.item))
        self.ctx.report.count("downloaded")
        return Done([(action.uid, Synced(action.uid, name, sig, src.ref, src.tag, src.item.hash),
                      src.item.text)])

    def create_copy(self, action: Action) -> Done:
        """keep-both: the device's version of a conflict, as a new item on both sides."""
        src, ctx = seen(action.device), self.ctx
        name, sig = ctx.source.create(action.uid, file_bytes(src.item))
        if name in self._flush():  # the copy must be safe on the device before it goes up
            return Done(recheck={action.server.ref} if action.server else set())
        href = ctx.remote.href_for(action.uid)
        etag = ctx.remote.create(href, src.item.data)
        self._tell_copy(action, name, href)
        record = (action.uid, Synced(action.uid, name, sig, href, etag, src.item.hash),
                  src.item.text)
        written = {href: Written(action.uid, Seen(name, sig, src.item), etag, True)}
        return Done([record], written=written, wrote_remote=True)

    def update_local(self, action: Action) -> Done:
        server, d, base = seen(action.server), action.device, action.base
        name = d.ref if d else _base(base).filename
        assert name is not None
        expect = d.tag if d else _base(base).device_sig
        sig = self.ctx.source.write(name, file_bytes(server.item), expect)
        self.ctx.report.count("downloaded")
        synced = Synced(action.uid, name, sig, server.ref, server.tag, server.item.hash)
        return Done([(action.uid, synced, server.item.text)])

    def delete_local(self, action: Action) -> Done:
        b, d = _base(action.base), action.device
        assert b.filename is not None
        self.ctx.source.delete(b.filename, d.tag if d else b.device_sig)
        self.ctx.report.count("deleted_local")
        return Done([(action.uid, None, None)])

    # ---- the server side -------------------------------------------------------------------

    def create_remote(self, action: Action) -> Done:
        uid, d, remote = action.uid, seen(action.device), self.ctx.remote
        href = remote.href_for(uid)
        try:
            etag = remote.create(href, d.item.data)
        except PreconditionFailed:  # someone else's item got there first (or our retried PUT)
            return self._compare_with_server(uid, d, href)
        except DavError as exc:
            raise self._refusal(uid, d.item, exc) from None
        self.ctx.report.count("uploaded")
        return Done([(uid, Synced(uid, d.ref, d.tag, href, etag, d.item.hash), d.item.text)],
                    written={href: Written(uid, d, etag, created=True)}, wrote_remote=True)

    def update_remote(self, action: Action) -> Done:
        d, b = seen(action.device), _base(action.base)
        if_match = action.server.tag if action.server else b.etag
        try:
            etag = self.ctx.remote.update(_href(b), d.item.data, if_match)
        except PreconditionFailed:
            return self._retry_after_412(action)
        except DavError as exc:
            raise self._refusal(action.uid, d.item, exc) from None
        self.ctx.report.count("updated")
        synced = Synced(action.uid, d.ref, d.tag, _href(b), etag, d.item.hash)
        return Done([(action.uid, synced, d.item.text)],
                    written={_href(b): Written(action.uid, d, etag, created=False)},
                    wrote_remote=True)

    def delete_remote(self, action: Action) -> Done:
        b, s = _base(action.base), action.server
        try:
            self.ctx.remote.delete(_href(b), s.tag if s else b.etag)
        except PreconditionFailed:
            return self._retry_after_412(action)
        self.ctx.report.count("deleted_remote")
        return Done([(action.uid, None, None)], wrote_remote=True)

    def _compare_with_server(self, uid: str, d: Seen, href: str) -> Done:
        """`href` holds something this run did not put there: fetch it and decide as for an
        item new on both sides (the same content is recorded, a different one is a conflict)."""
        fetched = next(iter(self.ctx.remote.multiget([href])), None)
        if fetched is None or fetched.data is None:
            raise Unsettled(f"{href} already exists on the server but cannot be read; it will "
                            f"be compared with {d.ref} on the next run", href)
        try:
            server = Seen(href, fetched.etag, parse_item(fetched.data, self.ctx.source.kind))
        except ParseError as exc:
            raise Unsettled(f"{href} already exists on the server and cannot be parsed: {exc}; "
                            f"{d.ref} was not uploaded", href) from None
        if server.item.uid != uid:
            raise Unsettled(f"{href} already holds another item (UID {server.item.uid}); "
                            f"{d.ref} was not uploaded", href)
        where = Synced(uid, d.ref, d.tag, href, server.tag, "")
        return Done(replan=Replan(uid, plan({}, {uid: d}, {uid: server}), where))

    def _retry_after_412(self, action: Action) -> Done:
        """The server copy changed under us: fetch it and decide again (a follow-up on the
        main thread); never overwrite blindly."""
        b = _base(action.base)
        fetched = next(iter(self.ctx.remote.multiget([_href(b)])), None)
        server: Seen | None = None
        if fetched is not None and fetched.data is not None:
            try:
                item = parse_item(fetched.data, self.ctx.source.kind)
            except ParseError as exc:
                raise DavError(f"{_href(b)} changed on the server and cannot be parsed: {exc}") \
                    from None
            server = Seen(_href(b), fetched.etag, item)
        device: Changes = {action.uid: action.device}
        planned = plan({action.uid: b}, device, {action.uid: server})
        return Done(replan=Replan(action.uid, planned, b))

    def _refusal(self, uid: str, item: Item, exc: DavError) -> DavError:
        """A failed upload's error; when the server refused the item itself, a `Refused` that
        carries its content, so that it is not sent again until it changes."""
        if exc.status not in REFUSED_STATUSES:
            return exc
        hint = ("The server takes no item this large: make it smaller (e.g. a smaller photo)."
                if exc.status == 413 else "Correct what the server names (e.g. a malformed "
                "date or property) in your contacts or calendar app.")
        reason = (f"refused by the server ({exc.answer or exc}); not sent again until the "
                  f"file changes. {hint}")
        return Refused(reason, exc.status, uid, Refusal(item.hash, reason))


def file_bytes(item: Item) -> bytes:
    """What a device file gets: CRLF line ends as RFC 5545/6350 ask, even when the server's
    XML answer (multiget) turned them into LF."""
    text = item.text
    if "\r\n" not in text:
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


def _base(base: Synced | None) -> Synced:
    assert base is not None
    return base


def _href(base: Synced) -> str:
    assert base.href is not None
    return base.href


def run_pool(handlers: Handlers, actions: list[Action], workers: int) -> list[Done]:
    """Server-side actions, a few at a time; results in the actions' order."""
    if not actions:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(handlers.perform, actions))
