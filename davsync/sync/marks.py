"""Settling how far the server was read (ctag, sync token, hrefs pending), once everything the
marks cover was applied, and checking this run's own writes against the listing after them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from davsync.core.item import ParseError, parse_item
from davsync.core.plan import Seen, plan
from davsync.core.synced import Synced
from davsync.dav.api import InvalidSyncToken
from davsync.sync.context import Context
from davsync.sync.execute import Record, Replan, Written
from davsync.sync.gather import ServerView
from davsync.sync.ledger import Ledger

log = logging.getLogger("davsync.engine")

# Characters that vCard/iCalendar text escaping gives a meaning to: a server that re-serializes
# what it stores may change a UID holding them (Radicale stores UID:a\b as a\\b and UID:a,b as a).
_ESCAPED_IN_TEXT = frozenset("\\,;\n\r")

# Carries out a re-plan (the main thread's follow-up rounds).
Settle = Callable[[Replan], None]


def keep_pending(ctx: Context, server: ServerView, ledger: Ledger) -> None:
    """The marks stay as they are (nothing read, or a run stopped early); hrefs that need
    another look are added to the pending ones."""
    failed = set(server.failed) | ledger.recheck
    if failed:
        ctx.store.set_pending(ctx.name, ctx.store.pending(ctx.name) | failed)


def save_marks(ctx: Context, server: ServerView, ledger: Ledger, settle: Settle) -> None:
    """Remember how far the server was read; after our own writes, settle on a fresh mark
    so the next no-op run costs one probe, and keep foreign changes pending."""
    if not server.read and not ledger.wrote_remote:
        keep_pending(ctx, server, ledger)
        return
    failed = set(server.failed) | ledger.recheck
    ctag, token, modified = server.ctag, server.token, server.modified
    remote = ctx.remote
    if ledger.wrote_remote and remote.supports_sync_collection():
        probe = remote.probe()
        try:
            delta = remote.sync(token)
        except InvalidSyncToken:
            delta = remote.sync(None)
        verify_writes(ctx, ledger, delta.changed, settle)
        failed |= ledger.recheck
        state = ctx.store.items(ctx.name)
        etags = {rec.href: rec.etag for rec in state.values() if rec.href}
        for href, etag in delta.changed.items():
            if href not in etags or etags[href] is None or etags[href] != etag:
                failed.add(href)
        failed |= set(delta.deleted) & set(etags)
        ctag, token, modified = probe.ctag, delta.sync_token, probe.mark
    elif ledger.wrote_remote:
        ctag = modified = None  # cannot tell our writes from others': list again next run
    ctx.store.set_pending(ctx.name, failed)
    ctx.store.save_marks(ctx.name, ctag, token, modified)


def verify_writes(
    ctx: Context, ledger: Ledger, listed: Mapping[str, str | None], settle: Settle
) -> None:
    """Check what this run PUT against the listing taken after it, before the marks make
    it 'synced': a PUT answered without an ETag (a server that rewrites what it stores
    may omit it) learns the server's etag now, not by a download next run; a create whose
    href lists another etag (a server that ignored If-None-Match let someone overwrite it,
    or overwrote theirs) is compared and, if different, is a conflict; a UID the server
    changed while storing it is reported. Costs nothing when each PUT's ETag is the listed
    one and the UID has nothing text escaping could change: one multiget per 50 others."""
    doubtful = {href: w for href, w in ledger.written.items()
                if href in listed and (w.etag is None or listed[href] != w.etag
                                       or _ESCAPED_IN_TEXT & set(w.uid))}
    ledger.written.clear()
    if not doubtful:
        return
    for fetched in ctx.remote.multiget(sorted(doubtful)):
        written = doubtful.get(fetched.href)
        if written is None or fetched.data is None:
            continue  # listed again as pending: looked at next run
        try:
            server = Seen(fetched.href, fetched.etag, parse_item(fetched.data, ctx.source.kind))
        except ParseError:
            continue
        checked = _check_written(ctx, written, server)
        if isinstance(checked, Replan):
            settle(checked)
        elif checked is not None:
            ledger.add([checked])
    ledger.commit()


def _check_written(ctx: Context, written: Written, server: Seen) -> Record | Replan | None:
    uid, d = written.uid, written.device
    if server.item.uid != uid:
        ctx.report.error(d.ref, f"the server changed the UID {uid!r} to "
                         f"{server.item.uid!r} when it stored {server.ref}; other devices "
                         "see it under that UID. Give the item a UID without \\ , ; to "
                         "avoid this")
        return uid, Synced(uid, d.ref, d.tag, server.ref, server.tag, d.item.hash), d.item.text
    if server.item.hash == d.item.hash:  # ours, as the server stores it: learn its etag
        return uid, Synced(uid, d.ref, d.tag, server.ref, server.tag, d.item.hash), d.item.text
    if not written.created:
        return None  # changed by someone after our update: downloaded next run
    log.warning("%s: %s holds other content than was just created there; treating it as "
                "a conflict", ctx.name, server.ref)
    where = Synced(uid, d.ref, d.tag, server.ref, server.tag, "")
    return Replan(uid, plan({}, {uid: d}, {uid: server}), where)
