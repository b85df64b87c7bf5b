"""The main thread's account of one collection's sync: the values handlers returned, folded
in, and the records committed in batches. Only this touches the state store's items."""

from __future__ import annotations

from dataclasses import dataclass, field

from davsync.state.store import Refusal
from davsync.sync.context import Context
from davsync.sync.execute import Done, Record, Replan, Written

_RECORD_BATCH = 200


@dataclass
class Ledger:
    ctx: Context
    refused: dict[str, Refusal] = field(default_factory=dict)  # uid -> refused content (state)
    recheck: set[str] = field(default_factory=set)  # hrefs to compare again next run
    written: dict[str, Written] = field(default_factory=dict)  # href -> what this run PUT
    wrote_remote: bool = False
    skipped: bool = False  # an action was not started: the run was cancelled
    _records: list[Record] = field(default_factory=list)
    _refusals: list[tuple[str, Refusal]] = field(default_factory=list)

    def absorb(self, done: Done) -> Replan | None:
        """Fold one action's result in; its re-plan, if any, is the caller's to carry out."""
        self.recheck |= done.recheck
        self.written.update(done.written)
        self.wrote_remote |= done.wrote_remote
        self.skipped |= done.skipped
        self._refusals.extend(done.refusals)
        self.add(done.records)
        return done.replan

    def add(self, records: list[Record]) -> None:
        self._records.extend(records)
        if len(self._records) >= _RECORD_BATCH:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Commit now, unless the device store rewrites itself whole on each flush (one file):
        its writes and their records then wait for the run's last commit, so a first sync of
        thousands writes the file once, not once per batch."""
        if not self.ctx.source.writes_whole:
            self.commit()

    def commit(self) -> None:
        """Make the device writes durable (one directory fsync), then record their outcomes in
        one transaction. A crash before this point loses only records, never data: the next
        run finds the same content on both sides and records it then."""
        if not self._records and not self._refusals:
            return
        ctx = self.ctx
        ctx.source.flush()
        records, self._records = self._records, []
        refusals, self._refusals = self._refusals, []
        with ctx.store.transaction():
            for uid, synced, text in records:
                if synced is None:
                    ctx.store.forget(ctx.name, uid)
                else:
                    ctx.store.record(ctx.name, synced, text)
            for uid, refusal in refusals:
                ctx.store.refuse(ctx.name, uid, refusal)
            done = {uid for uid, _, _ in records}
            ctx.store.clear_refused(ctx.name, done & self.refused.keys())
