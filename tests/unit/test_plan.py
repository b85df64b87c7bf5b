"""Sync planning as a table: for each combination of changes, the one right action."""

from __future__ import annotations

import pytest

from davsync.core.item import parse_item
from davsync.core.plan import (
    Action,
    Op,
    Seen,
    mass_deletion,
    plan,
    resolve_conflicts,
)
from davsync.core.synced import Synced


def card(uid: str, fn: str) -> Seen:
    text = f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\nEND:VCARD\r\n"
    return Seen(f"{uid}.vcf", "sig", parse_item(text.encode(), "contacts"))


BASE_ITEM = card("u", "Base")
BASE = Synced("u", "u.vcf", "sig0", "/c/u.vcf", "e0", BASE_ITEM.item.hash)
SAME = card("u", "Base")  # same content, new tags
EDIT_D = card("u", "Device edit")
EDIT_S = card("u", "Server edit")

UNCHANGED = object()
CASES = [
    # (base, device, server, expected op)
    (None, EDIT_D, UNCHANGED, Op.CREATE_REMOTE),
    (None, UNCHANGED, EDIT_S, Op.CREATE_LOCAL),
    (None, SAME, SAME, Op.RECORD),
    (None, EDIT_D, EDIT_S, Op.CONFLICT),
    (BASE, EDIT_D, UNCHANGED, Op.UPDATE_REMOTE),
    (BASE, SAME, UNCHANGED, Op.RECORD),
    (BASE, UNCHANGED, EDIT_S, Op.UPDATE_LOCAL),
    (BASE, UNCHANGED, SAME, Op.RECORD),
    (BASE, None, UNCHANGED, Op.DELETE_REMOTE),
    (BASE, UNCHANGED, None, Op.DELETE_LOCAL),
    (BASE, None, None, Op.FORGET),
    (BASE, None, EDIT_S, Op.CREATE_LOCAL),  # an edit beats a deletion
    (BASE, EDIT_D, None, Op.CREATE_REMOTE),
    (BASE, None, SAME, Op.DELETE_REMOTE),
    (BASE, SAME, None, Op.DELETE_LOCAL),
    (BASE, EDIT_D, EDIT_D, Op.RECORD),  # identical on both sides is no conflict
    (BASE, SAME, EDIT_S, Op.UPDATE_LOCAL),
    (BASE, EDIT_D, SAME, Op.UPDATE_REMOTE),
    (BASE, EDIT_D, EDIT_S, Op.CONFLICT),
]


@pytest.mark.parametrize(("base", "device", "server", "expected"), CASES)
def test_plan_table(base: Synced | None, device: object, server: object, expected: Op) -> None:
    state = {"u": base} if base else {}
    d = {} if device is UNCHANGED else {"u": device}
    s = {} if server is UNCHANGED else {"u": server}
    actions = plan(state, d, s)  # type: ignore[arg-type]
    assert [a.op for a in actions] == [expected]


def test_nothing_changed_means_no_actions() -> None:
    assert plan({"u": BASE}, {}, {}) == []


def test_deletion_of_an_item_never_synced_is_ignored() -> None:
    assert plan({}, {"u": None}, {}) == []


def conflict() -> list[Action]:
    return plan({"u": BASE}, {"u": EDIT_D}, {"u": EDIT_S})


def test_keep_both_keeps_server_under_uid_and_device_copy_under_new_uid() -> None:
    out = resolve_conflicts(conflict(), "keep-both", lambda a: "copy-uid",
                            lambda a: "kept because")
    assert [a.op for a in out] == [Op.UPDATE_LOCAL, Op.CREATE_COPY]
    copy = out[1].device
    assert copy is not None and copy.item.uid == "copy-uid"
    assert "Device edit" in copy.item.text and "kept because" in copy.item.text


@pytest.mark.parametrize(("policy", "op"), [("server-wins", Op.UPDATE_LOCAL),
                                            ("device-wins", Op.UPDATE_REMOTE)])
def test_winner_policies(policy: str, op: Op) -> None:
    out = resolve_conflicts(conflict(), policy, lambda a: "x", lambda a: "")
    assert [a.op for a in out] == [op]


@pytest.mark.parametrize(
    ("deletes", "total", "blocked"),
    [(9, 10, False), (10, 19, True), (10, 20, False), (50, 60, True), (0, 0, False),
     # every item of a side, however few: a vanished folder or an unmounted disk
     (1, 1, True), (4, 4, True), (9, 9, True), (3, 4, False)],
)
def test_mass_deletion_guard(deletes: int, total: int, blocked: bool) -> None:
    actions = [Action(Op.DELETE_LOCAL, str(i)) for i in range(deletes)]
    assert (mass_deletion(actions, total, 1000) is not None) is blocked
    remote = [Action(Op.DELETE_REMOTE, str(i)) for i in range(deletes)]
    message = mass_deletion(remote, 1000, total)
    assert (message is not None) is blocked
    if message:
        assert "--allow-mass-delete" in message and "server" in message
