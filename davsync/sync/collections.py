"""Every collection of a kind (`collections = "all"` or a list): discover the account's
collections, pair them with the folders under the configured parent (`core.collections`),
create what one side lacks, and sync each collection's display name and colour.

Built from values by the composition root; the pairing itself is the pure
`core.collections.plan_collections`, everything here is its I/O: the home-set listing, the
device folders, MKCOL / MKCALENDAR, PROPPATCH and the state store's memory of each pairing.
A collection that vanished from the server is reported and its folder never touched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urljoin

from davsync.core.collections import (
    CollectionPlan,
    Gone,
    Pair,
    ServerCollection,
    merge_meta,
    meta_value,
    plan_collections,
)
from davsync.core.kinds import noun
from davsync.dav import xmlbodies as xb
from davsync.dav.api import DavError, Probe
from davsync.dav.collection import Collection
from davsync.dav.discovery import (
    list_collections,
    list_home,
    set_properties,
    unknown_collection,
)
from davsync.dav.quirks import identify
from davsync.errors import ServerSettingError
from davsync.fsutil import write_atomic
from davsync.report import CollectionReport
from davsync.state.store import CollectionMeta
from davsync.sync.layout import adopt_collection, is_single
from davsync.sync.values import Target

if TYPE_CHECKING:
    from davsync.core.kinds import Kind
    from davsync.dav.client import DavClient
    from davsync.state.store import StateStore

# The vdir metadata files (vdirsyncer's `metasync`) and the DAV property each one mirrors.
log = logging.getLogger(__name__)
META_FILES: Final = {"displayname": xb.DISPLAYNAME, "color": xb.CALENDAR_COLOR}


@dataclass(frozen=True)
class KindSpec:
    """One kind configured with `collections`: its parent folder, the names (None: all),
    whether a listed name the account lacks may be created, and how its state is keyed."""

    kind: Kind
    parent: Path
    wanted: tuple[str, ...] | None
    create: bool
    key_for: Callable[[str], str]  # collection name -> state key
    pull_only: bool = False  # restore mode: nothing is created or changed on the server


@dataclass
class Discovered:
    """What discovery of one kind gives the run: the targets to sync, the reports of the
    collections it cannot sync (vanished, not creatable), and each target's listing."""

    targets: list[Target] = field(default_factory=list)
    reports: list[tuple[Target, CollectionReport]] = field(default_factory=list)
    listed: dict[str, ServerCollection] = field(default_factory=dict)  # by state key


def known_pairs(store: StateStore, spec: KindSpec) -> dict[str, CollectionMeta]:
    """Every collection of this kind and server paired in an earlier run: name -> meta (one
    the single form synced is not: its store is elsewhere, `sync.layout`)."""
    out = {}
    for known in store.collections():
        name = known.name.removeprefix(f"{spec.kind}:").rsplit("@", 1)[0]
        meta = store.meta(known.name)
        if known.kind == spec.kind and meta is not None and not is_single(meta) \
                and spec.key_for(name) == known.name:
            out[name] = meta
    return out


def device_folders(parent: Path) -> set[str]:
    """The folders under the parent: hidden ones (temporary, `.git`) and links are not."""
    parent.mkdir(parents=True, exist_ok=True)
    with os.scandir(parent) as entries:
        return {e.name for e in entries
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")}


def discover(client: DavClient, store: StateStore, spec: KindSpec,
             selected: Callable[[str], bool]) -> Discovered:
    """Pair the account's collections of `spec.kind` with the device folders and prepare
    each selected pair: folder made, server collection created, pairing remembered."""
    known = known_pairs(store, spec)
    home, listed = _listing(client, store, spec, known)
    try:
        folders = device_folders(spec.parent)
    except OSError as exc:
        raise ServerSettingError(f"[device] {spec.kind}: cannot read or create the folder "
                                 f"{spec.parent} ({exc.strerror}); check it and its "
                                 "permissions") from None
    plan = plan_collections(listed, folders, {n: m.folder for n, m in known.items()},
                            spec.wanted, create=spec.create)
    _refuse_missing(spec, plan, listed)
    for name in plan.forget:
        store.forget_collection(spec.key_for(name))
    out = Discovered()
    by_name = {c.name: c for c in listed}
    for pair in (p for p in plan.pairs if selected(p.name)):
        _prepare(client, store, spec, home, pair, known.get(pair.name), by_name, out)
    for gone in (g for g in plan.gone if selected(g.name)):
        out.reports.append(_gone(store, spec, gone))
    return out


def _listing(client: DavClient, store: StateStore, spec: KindSpec,
             known: Mapping[str, CollectionMeta]) -> tuple[str, list[ServerCollection]]:
    """The home of `spec.kind` and its collections. The home the collections synced before
    live in (their URLs in the state) is listed straight away: finding it again costs two
    requests per kind and run. Where that is not a listing, or one that lacks a collection
    synced before, the home is found again (the account may have moved): a collection is
    reported gone only from the home the server names now."""
    states = [s for name in known if (s := store.collection(spec.key_for(name))) is not None]
    for state in states:  # what server this is, before the listing decides what to ask
        client.learn(identify(sync_token=state.sync_token))
    homes = {_parent(found.url) for found in states if found.url}
    if len(homes) == 1:
        home = homes.pop()
        # Every collection synced before holds a fresh getlastmodified mark: the listing asks
        # for that alone (`dav.probe.probe_props`), no walk over every item of each.
        marked = all(s.modified is not None for s in states)
        try:
            listed = list_home(client, home, spec.kind, probes=True, marked=marked)
        except DavError as exc:
            log.info("%s: the %s home %s lists nothing (%s); finding it again", spec.kind,
                     noun(spec.kind), home, exc)
        else:
            if set(known) <= {c.name for c in listed}:
                return home, listed
    return list_collections(client, spec.kind, probes=True)


def _parent(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[0] + "/"


def _refuse_missing(spec: KindSpec, plan: CollectionPlan,
                    listed: Sequence[ServerCollection]) -> None:
    """A listed name the account lacks: the same question as for `[server] addressbook`."""
    if plan.missing:
        raise ServerSettingError(unknown_collection(
            f"[device] [{spec.kind}] collections", spec.kind, plan.missing[0],
            [c.name for c in listed]))


def _prepare(client: DavClient, store: StateStore, spec: KindSpec, home: str, pair: Pair,
             meta: CollectionMeta | None, by_name: Mapping[str, ServerCollection],
             out: Discovered) -> None:
    key, path = spec.key_for(pair.name), spec.parent / pair.folder
    target = Target(spec.kind, pair.name, path, key)
    if pair.href is None and spec.pull_only:
        log.info("%s: held back: a new device folder becomes a %s on the server only when "
                 "the daemon may upload (mode both)", path, noun(spec.kind))
        return
    try:
        if pair.new_folder:
            path.mkdir(exist_ok=True)
        if pair.href is None:
            listing = _create_on_server(client, spec.kind, home, pair.name, path)
        else:
            listing = by_name[pair.name]
    except (OSError, DavError) as exc:
        report = CollectionReport()
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        report.error(pair.name, f"cannot create this {noun(spec.kind)}: {reason}; it is "
                     "tried again on the next run")
        out.reports.append((target, report))
        return
    target.url = urljoin(home, listing.href)
    if listing.ctag is not None or listing.modified is not None:  # the listing probed it
        target.probe = Future()
        target.probe.set_result(Probe(listing.ctag, None, listing.modified, listing.settled))
    if meta is None:
        adopt_collection(store, key, spec.kind, path)
    store.save_collection(key, spec.kind, target.url)
    store.save_meta(key, meta if meta is not None else CollectionMeta(pair.folder))
    out.targets.append(target)
    out.listed[key] = listing


def _create_on_server(client: DavClient, kind: Kind, home: str, name: str,
                      folder: Path) -> ServerCollection:
    """MKCOL (addressbook) or MKCALENDAR at <home>/<name>/, named after the folder's
    `displayname` file, else after the folder (a server's own default, such as Radicale's
    "user/name", would otherwise come back as the device's display name); its listing as it
    now is (the colour is sent by the metadata sync)."""
    href = quote(name, safe="") + "/"
    displayname = read_meta(folder, "displayname") or name
    Collection(client, urljoin(home, href), kind, exists=False).ensure_exists(displayname)
    return ServerCollection(name, href, displayname)


def _gone(store: StateStore, spec: KindSpec, gone: Gone) -> tuple[Target, CollectionReport]:
    """The report of a collection the server no longer lists. Its item state is dropped (a
    collection that comes back is merged afresh, nothing deleted); its folder is untouched."""
    key, path = spec.key_for(gone.name), spec.parent / gone.folder
    store.reset_collection(key)
    what = noun(spec.kind)
    then = (f"rename the folder to upload it as a new {what}, or move it out of {spec.parent}"
            if spec.wanted is None else f"or remove {gone.name!r} from collections")
    report = CollectionReport()
    report.error(gone.name, f"the server no longer has this {what}; its device folder {path} "
                 f"is kept with every file and is not synced. Create the {what} on the server "
                 f"again to sync it (its files are uploaded, nothing is deleted), {then}")
    return Target(spec.kind, gone.name, path, key), report


def read_meta(folder: Path, name: str) -> str | None:
    """A vdir metadata file's value (one line; a missing file is no value)."""
    try:
        return meta_value((folder / name).read_text(encoding="utf-8", errors="replace"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def sync_meta(client: DavClient, store: StateStore, target: Target,
              listing: ServerCollection, report: CollectionReport, *,
              pull_only: bool = False) -> None:
    """Display name and colour both ways: the side that changed since the last sync wins.
    A device folder that is missing is the engine's to report; nothing is written then.
    `pull_only` (restore mode): a value the server should get is held back, unrecorded."""
    if target.url is None or not target.path.is_dir():
        return
    synced = store.meta(target.key) or CollectionMeta(target.path.name)
    values = {}
    for name in META_FILES:
        server = meta_value(listing.displayname if name == "displayname" else listing.color)
        before = getattr(synced, name)
        values[name] = _merge_one(client, target, name, server, before, report, pull_only)
    store.save_meta(target.key, CollectionMeta(synced.folder, **values))


def _merge_one(client: DavClient, target: Target, name: str, server: str | None,
               synced: str | None, report: CollectionReport, pull_only: bool) -> str | None:
    assert target.url is not None
    device = read_meta(target.path, name)
    merged = merge_meta(device, server, synced)
    if pull_only and (merged.write_server or merged.conflict):
        return synced  # the device's value waits for a run that may upload
    where = f"{target.path / name}"
    try:
        if merged.write_device and merged.value is not None:
            write_atomic(target.path / name, merged.value.encode("utf-8"), mode=0o644)
        if merged.write_server and merged.value is not None:
            set_properties(client, target.url, {META_FILES[name]: merged.value})
    except (OSError, DavError) as exc:
        report.error(where, f"not synced: {exc}; it is tried again on the next run")
        return synced
    if merged.conflict:
        report.conflict(where, f"changed on both sides: the server's {merged.value!r} is "
                        f"kept, the device's {device!r} was replaced")
    return merged.value
