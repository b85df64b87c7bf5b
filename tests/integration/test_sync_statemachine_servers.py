"""The sync state machine (tests/unit/test_sync_statemachine.py) against real servers.

The same rules and invariants -- random edits, additions and deletions on both sides between
syncs, always converging and losing nothing -- but the collection is a real one on Radicale or
Xandikos, reached by the real DavClient, and "another client" edits it with plain PUT/DELETE.
Bounded (a few short examples, each in a fresh collection) to keep CI time.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from davsync.dav.client import DavClient
from davsync.dav.collection import Collection
from davsync.dav.discovery import find_collection
from davsync.secret import Secret
from tests.integration.test_sync_radicale import Account
from tests.unit.test_sync_statemachine import SyncMachine

REAL = settings(max_examples=6, stateful_step_count=10, deadline=None,
                suppress_health_check=list(HealthCheck))


class _Auth:
    def __init__(self, username: str, password: str) -> None:
        self._pair = (username, Secret(password))

    def credentials(self) -> tuple[str, Secret]:
        return self._pair

    def refresh(self) -> bool:
        return False


class RealRemote:
    """A real collection for the engine, plus what the machine needs to play another client:
    `items` (href -> (etag, data), read from the server), `put_raw` and `delete_raw`."""

    def __init__(self, collection: Collection, account: Account) -> None:
        self.collection = collection
        self._origin = account.url.rstrip("/")
        self._auth = (account.username, account.password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    @property
    def items(self) -> dict[str, tuple[str | None, bytes]]:
        if not self.collection.exists:
            return {}
        hrefs = list(self.collection.list_etags())
        return {f.href: (f.etag, f.data) for f in self.collection.multiget(hrefs)
                if f.data is not None}

    def put_raw(self, href: str, data: bytes) -> None:
        self.collection.ensure_exists()
        answer = httpx.put(self._origin + href, content=data, auth=self._auth,
                           headers={"Content-Type": "text/vcard"})
        assert answer.status_code in (200, 201, 204), answer

    def delete_raw(self, href: str) -> None:
        answer = httpx.delete(self._origin + href, auth=self._auth)
        assert answer.status_code in (200, 204), answer

    def multiget(self, hrefs: Sequence[str]) -> Iterator[Any]:
        return self.collection.multiget(hrefs)


_names = itertools.count()


def test_sync_state_machine_against_a_real_server(account: Account) -> None:
    with DavClient(account.url, _Auth(account.username, account.password)) as client:

        class OnServer(SyncMachine):
            def __init__(self) -> None:
                super().__init__()
                name = f"sm{next(_names)}-{uuid.uuid4().hex[:6]}"
                self.rig.remote = RealRemote(  # type: ignore[assignment]
                    find_collection(client, "contacts", name, create=True), account)

            def teardown(self) -> None:
                self.sync()  # every example ends with a checked sync, however short it is
                super().teardown()

        run_state_machine_as_test(OnServer, settings=REAL)
        assert client.counter.by_method.get("REPORT", 0) >= REAL.max_examples
