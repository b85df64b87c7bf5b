"""Random edits, additions and deletions on both sides between syncs: always converge, lose nothing.

"Nothing lost": every value that is current on a side and was changed there since the last
sync (or unchanged on both sides) exists somewhere after the sync, possibly as a conflict copy.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.unit.rig import Rig, vcard

UIDS = st.sampled_from([f"u{i}" for i in range(6)])


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="davsync-sm-"))
        self.rig = Rig(self.root)
        self.values = itertools.count()
        self.synced: dict[str, str] = {}

    def teardown(self) -> None:
        self.rig.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _value(self) -> str:
        return f"v{next(self.values)}"

    def _device_file(self, uid: str) -> Path | None:
        for path in self.rig.dir.glob("*.vcf"):
            if f"UID:{uid}\r\n" in path.read_text():
                return path
        return None

    def _server_href(self, uid: str) -> str | None:
        for href, (_, data) in self.rig.remote.items.items():
            if f"UID:{uid}\r\n" in data.decode():
                return href
        return None

    @rule(uid=UIDS)
    def device_write(self, uid: str) -> None:
        path = self._device_file(uid) or self.rig.dir / f"{uid}.vcf"
        path.write_bytes(vcard(uid, self._value()))

    @rule(uid=UIDS)
    def device_delete(self, uid: str) -> None:
        path = self._device_file(uid)
        if path is not None:
            path.unlink()

    @rule(uid=UIDS)
    def server_write(self, uid: str) -> None:
        href = self._server_href(uid) or self.rig.remote.href_for(uid)
        self.rig.remote.put_raw(href, vcard(uid, self._value()))

    @rule(uid=UIDS)
    def server_delete(self, uid: str) -> None:
        href = self._server_href(uid)
        if href is not None:
            self.rig.remote.delete_raw(href)

    @precondition(lambda self: True)
    @rule()
    def sync(self) -> None:
        device, server = self.rig.device(), self.rig.server()
        must_keep: set[str] = set()
        for uid in set(device) | set(server):
            d, s, b = device.get(uid), server.get(uid), self.synced.get(uid)
            if d is not None and (d != b or s == b):
                must_keep.add(d)
            if s is not None and (s != b or d == b):
                must_keep.add(s)
        # Deleting every item of a side asks for --allow-mass-delete (test_engine tests the
        # guard); these random runs may do that on purpose.
        report = self.rig.sync(allow_mass_delete=True)
        assert report.errors == [], report.errors
        self.rig.sync(allow_mass_delete=True)  # settles conflict copies of the first run
        final_d, final_s = self.rig.device(), self.rig.server()
        assert final_d == final_s
        assert must_keep <= set(final_d.values()), must_keep - set(final_d.values())
        self.synced = final_d

    @invariant()
    def no_temp_files_left(self) -> None:
        assert not list(self.rig.dir.glob(".davsync-*"))


SyncMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestSyncMachine = SyncMachine.TestCase
