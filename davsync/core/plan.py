"""Sync planning: from the last synced state and what changed on each side, decide the actions.

Pure: no I/O. The sync (`davsync.sync`) gathers the inputs, calls `plan`, resolves conflicts
with `resolve_conflicts`, checks `mass_deletion`, then executes and records each action.

Rules that protect data: an edit always beats a deletion; identical content on both sides is
not a conflict; an item that could not be read on a side never appears here, so it can never be
deleted or overwritten because of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from davsync.core.item import Item, with_note, with_uid
from davsync.core.policy import ConflictPolicy
from davsync.core.synced import Synced


@dataclass(frozen=True)
class Seen:
    """A new or changed version found on one side: where it is, its tag, and its content."""

    ref: str  # device: file name; server: href
    tag: str | None  # device: stat signature; server: etag
    item: Item


_COPY_NAMESPACE = uuid.UUID("5b0e6d3c-3f0a-4c1e-9d0b-64617673796e")

# uid -> new/changed version, or None when deleted; a uid not present is unchanged.
Changes = Mapping[str, Seen | None]


class Op(Enum):
    CREATE_REMOTE = "create_remote"
    UPDATE_REMOTE = "update_remote"
    DELETE_REMOTE = "delete_remote"
    CREATE_LOCAL = "create_local"
    UPDATE_LOCAL = "update_local"
    DELETE_LOCAL = "delete_local"
    RECORD = "record"  # both sides already agree: remember the new tags only
    FORGET = "forget"  # gone on both sides
    CONFLICT = "conflict"
    CREATE_COPY = "create_copy"  # keep-both: the losing copy, new on both sides
    # A device item read without a UID, or with another file's: its new UID is written back
    # to the file before the item is planned (`base`: what that file was synced as, if any).
    REPAIR_UID = "repair_uid"


@dataclass(frozen=True)
class Action:
    op: Op
    uid: str
    device: Seen | None = None
    server: Seen | None = None
    base: Synced | None = None
    reason: str = ""
    copy_of: str | None = None  # CREATE_COPY: the UID of the item it is a conflict copy of


def plan(state: Mapping[str, Synced], device: Changes, server: Changes) -> list[Action]:
    """Decide one action per UID that changed anywhere; sorted by UID for determinism."""
    actions = []
    for uid in sorted(set(device) | set(server)):
        action = _decide(uid, state.get(uid), device, server)
        if action is not None:
            actions.append(action)
    return actions


def _decide(uid: str, base: Synced | None, device: Changes, server: Changes) -> Action | None:
    d_known, s_known = uid in device, uid in server
    d, s = device.get(uid), server.get(uid)
    if base is None:
        return _decide_new(uid, d, s)
    if d_known and s_known:
        return _decide_both(uid, base, d, s)
    if d_known:
        if d is None:
            return Action(Op.DELETE_REMOTE, uid, base=base)
        if d.item.hash == base.hash:
            return Action(Op.RECORD, uid, device=d, base=base)
        return Action(Op.UPDATE_REMOTE, uid, device=d, base=base)
    if s is None:
        return Action(Op.DELETE_LOCAL, uid, base=base)
    if s.item.hash == base.hash:
        return Action(Op.RECORD, uid, server=s, base=base)
    return Action(Op.UPDATE_LOCAL, uid, server=s, base=base)


def _decide_new(uid: str, d: Seen | None, s: Seen | None) -> Action | None:
    if d is not None and s is not None:
        if d.item.hash == s.item.hash:
            return Action(Op.RECORD, uid, device=d, server=s)
        return Action(Op.CONFLICT, uid, device=d, server=s, reason="added on both sides")
    if d is not None:
        return Action(Op.CREATE_REMOTE, uid, device=d)
    if s is not None:
        return Action(Op.CREATE_LOCAL, uid, server=s)
    return None  # deleted on a side we never synced: nothing to do


def _decide_both(uid: str, base: Synced, d: Seen | None, s: Seen | None) -> Action:
    if d is None and s is None:
        return Action(Op.FORGET, uid, base=base)
    if d is None:
        assert s is not None
        if s.item.hash == base.hash:
            return Action(Op.DELETE_REMOTE, uid, server=s, base=base)
        return Action(Op.CREATE_LOCAL, uid, server=s, base=base, reason="edited on the server")
    if s is None:
        if d.item.hash == base.hash:
            return Action(Op.DELETE_LOCAL, uid, device=d, base=base)
        return Action(Op.CREATE_REMOTE, uid, device=d, base=base, reason="edited on the device")
    if d.item.hash == s.item.hash:
        return Action(Op.RECORD, uid, device=d, server=s, base=base)
    if d.item.hash == base.hash:
        return Action(Op.UPDATE_LOCAL, uid, device=d, server=s, base=base)
    if s.item.hash == base.hash:
        return Action(Op.UPDATE_REMOTE, uid, device=d, server=s, base=base)
    return Action(Op.CONFLICT, uid, device=d, server=s, base=base, reason="changed on both sides")


def copy_uid(action: Action) -> str:
    """The UID of a conflict's device copy: the same for the same item and device version, so
    that a run killed halfway through keeping both finds the copy it made, not a reason to
    make another."""
    assert action.device is not None
    return str(uuid.uuid5(_COPY_NAMESPACE, f"{action.uid}\n{action.device.item.hash}"))


def resolve_conflicts(
    actions: Iterable[Action],
    policy: ConflictPolicy,
    copy_uid: Callable[[Action], str],
    note: Callable[[Action], str],
    known: Container[str] = frozenset(),
) -> list[Action]:
    """Replace each CONFLICT by what `policy` says. keep-both keeps the server copy under the
    UID and turns the device copy into a new item (UID `copy_uid`, a note saying why) on both
    sides, unless that UID is `known` already (synced, or seen on a side): an interrupted run
    made that copy, and it holds this very version."""
    out: list[Action] = []
    for action in actions:
        if action.op is not Op.CONFLICT:
            out.append(action)
            continue
        d, s = action.device, action.server
        assert d is not None and s is not None
        if policy == ConflictPolicy.SERVER_WINS:
            out.append(replace(action, op=Op.UPDATE_LOCAL))
        elif policy == ConflictPolicy.DEVICE_WINS:
            out.append(replace(action, op=Op.UPDATE_REMOTE))
        else:
            out.append(replace(action, op=Op.UPDATE_LOCAL))
            uid = copy_uid(action)
            if uid in known:
                continue
            copy = with_note(with_uid(d.item, uid), note(action))
            out.append(Action(Op.CREATE_COPY, uid, device=Seen("", None, copy),
                              reason=f"conflict copy of {action.uid}", copy_of=action.uid))
    return out


def mass_deletion(actions: Iterable[Action], device_count: int, server_count: int) -> str | None:
    """A message when the run would delete more than half of a side (and at least 10 items),
    or every item of a side, however few: an emptied side is more often a folder that was
    moved or a disk that is not mounted than a wish."""
    actions = list(actions)
    local = sum(1 for a in actions if a.op is Op.DELETE_LOCAL)
    remote = sum(1 for a in actions if a.op is Op.DELETE_REMOTE)
    for count, total, side in ((local, device_count, "device"), (remote, server_count, "server")):
        if (count >= 10 and count * 2 > total) or (count and count >= total):
            return (
                f"would delete {count} of {total} items on the {side}; stopped for safety. "
                "If that is intended, run again with --allow-mass-delete"
            )
    return None
