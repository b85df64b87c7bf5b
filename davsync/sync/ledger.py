"""The main thread's account of one collection's sync: the values handlers returned, folded
in, and the records committed in batches. Only this touches the state store's items."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from davsync.core.synced import Synced
from davsync.state.store import Refusal
from davsync.sync.context import Context
from davsync.sync.execute import Done, Record, Replan, Written

# Records kept before a commit (each commit first makes the device files durable: one syncfs
# and one directory fsync): at most this many, or this many characters of item text, which
# the records carry for the state (1 000 contacts with 150 KB photos would be 150 MB).
_RECORD_BATCH = 1000
_RECORD_BATCH_CHARS = 8 << 20


@dataclass
class Ledger:
    ctx: Context
    refused: dict[str, Refusal] = field(default_factory=dict)  # uid -> refused content (state)
    recheck: set[str] = field(default_factory=set)  # hrefs to compare again next run
    written: dict[str, Written] = field(default_factory=dict)  # href -> what this run PUT
    wrote_remote: bool = False
    skipped: bool = False  # an action was not started: the run was cancelled
    _records: list[Record] = field(default_factory=list)
    _flushing: list[Record] = field(default_factory=list)  # their writes: a background flush
    _refusals: list[tuple[str, Refusal]] = field(default_factory=list)
    _failed: set[str] = field(default_factory=set)  # device writes not completed, unrecorded
    _chars: int = 0  # item text held by `_records`

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
        self._chars += sum(len(text) for _, _, text in records if text is not None)
        if len(self._records) >= _RECORD_BATCH or self._chars >= _RECORD_BATCH_CHARS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Record the previous batch and have the device store make this one durable in the
        background (`Source.start_flush`) while the next is applied: a batch's records are
        written once its flush is done, as in `commit`. Nothing here when the device store
        rewrites itself whole on each flush (one file): its writes and their records then
        wait for the run's last commit, so a first sync of thousands writes the file once,
        not once per batch."""
        if self.ctx.source.writes_whole:
            return
        self._failed |= self._flushed(self.ctx.source.start_flush)
        records, self._flushing = self._flushing, self._records
        self._records, self._chars = [], 0
        self._record(records)

    def flush(self) -> set[str]:
        """Make the device writes so far durable; the names whose write could not be
        completed are reported (once), returned, and kept until `commit`, which records no
        outcome for them."""
        failed = self._flushed(self.ctx.source.flush)
        self._failed |= failed
        return failed

    def _flushed(self, flush: Callable[[], dict[str, str]]) -> set[str]:
        """The names a device flush could not complete, reported. A flush that raised made
        none of the writes it held durable (a batch in the background, the ones after it):
        their records are dropped, so that no later commit records a file that is not there
        (the next run finds the server's items again)."""
        try:
            failed = flush()
        except BaseException:
            self._flushing, self._records, self._chars = [], [], 0
            raise
        for name, why in sorted(failed.items()):
            self.ctx.report.error(self.ctx.device_path(name), why)
        return set(failed)

    def commit(self) -> None:
        """Make the device writes durable (`flush`), then record their outcomes in one
        transaction. A crash before this point loses only records, never data: the next run
        finds the same content on both sides and records it then. A write the store could not
        complete is not recorded, and its server version is compared again next run."""
        self.flush()
        records, self._flushing = [*self._flushing, *self._records], []
        self._records, self._chars = [], 0
        self._record(records)
        self._failed = set()

    def _record(self, records: list[Record]) -> None:
        """One transaction: `records` (their device writes durable), minus the writes that
        could not be completed, and the refusals so far."""
        if not records and not self._refusals:
            return
        ctx, failed = self.ctx, self._failed
        kept: list[Record] = []
        for record in records:
            synced = record[1]
            if synced is not None and synced.filename in failed:
                if synced.href is not None:
                    self.recheck.add(synced.href)
                continue
            kept.append(record)
        refusals, self._refusals = self._refusals, []
        settled = ctx.source.settled
        with ctx.store.transaction():
            run: list[tuple[Synced, str | None]] = []  # records in a row, one statement
            for uid, synced, text in kept:
                if synced is not None:
                    if synced.device_sig is not None:
                        synced = replace(synced, device_sig=settled(synced.device_sig))
                    run.append((synced, text))
                    continue
                ctx.store.upsert(ctx.name, run)
                run = []
                ctx.store.forget(ctx.name, uid)
            ctx.store.upsert(ctx.name, run)
            for uid, refusal in refusals:
                ctx.store.refuse(ctx.name, uid, refusal)
            done = {uid for uid, _, _ in kept}
            ctx.store.clear_refused(ctx.name, done & self.refused.keys())
