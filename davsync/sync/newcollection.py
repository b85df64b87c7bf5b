"""A collection the server does not have yet: created before the first upload, with its first
items in the same request where the server can (Radicale's bulk PUT: item-by-item upload is
O(N^2) there)."""

from __future__ import annotations

import logging

from davsync.core.plan import Action, Op
from davsync.core.synced import Synced
from davsync.dav.api import DavError
from davsync.sync.context import REFUSED_STATUSES, Context, seen
from davsync.sync.ledger import Ledger

log = logging.getLogger("davsync.engine")


def create_collection(ctx: Context, ledger: Ledger, actions: list[Action]) -> list[Action]:
    """Create the collection; returns the actions still to carry out (the uploads the bulk
    request did not already make)."""
    creates = [a for a in actions if a.op is Op.CREATE_REMOTE]
    if creates and ctx.remote.can_bulk_create() and _bulk_create(ctx, ledger, creates):
        return [a for a in actions if a.op is not Op.CREATE_REMOTE]
    ctx.remote.ensure_exists()
    # A write like any other: its marks are read after the run's writes (`sync.marks`), so
    # an empty new collection has a sync-token and a getctag from its first run on (the
    # next run is a probe, and on Radicale no later token request creates its cache folder
    # inside it, which would move the getlastmodified another device's pairing checks).
    ledger.wrote_remote = True
    return actions


def _bulk_create(ctx: Context, ledger: Ledger, creates: list[Action]) -> bool:
    """One request for a new collection's first upload; False when the server refused that
    body (one bad or too large item spoils it): then it goes item by item, so only the items
    the server refuses are reported, each on its own."""
    items = [(a.uid, seen(a.device).item.data) for a in creates]
    try:
        created = ctx.remote.bulk_create(items)
    except DavError as exc:
        if exc.status not in REFUSED_STATUSES:
            raise
        log.info("%s: one-request upload refused (%s); uploading item by item", ctx.name, exc)
        return False
    ledger.wrote_remote = True
    rows = []
    for action in creates:
        d = seen(action.device)
        where = created.get(action.uid)
        if where is None:
            ctx.report.error(d.ref, "the server did not store it in the bulk upload")
            continue
        rows.append((Synced(action.uid, d.ref, d.tag, where.href, where.etag, d.item.hash),
                     d.item.text))
        ctx.report.count("uploaded")
    ctx.store.record_many(ctx.name, rows)
    return True
