"""The composition root of a sync run: build the adapters from config and run each collection.

Heavy or optional modules (provisioning, backup) are imported only when used, so a no-op sync
starts fast.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from davsync.config import Config
from davsync.core.item import Kind
from davsync.dav.api import Authenticator, DavError, RequestCounter
from davsync.engine import CollectionReport, CollectionSync, SyncOptions
from davsync.errors import EXIT_ITEMS_FAILED, EXIT_OK, DavsyncError
from davsync.sources.vdir import VdirSource
from davsync.state.store import StateStore

if TYPE_CHECKING:
    from davsync.dav.client import DavClient

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    collections: dict[str, CollectionReport] = field(default_factory=dict)
    http_requests: int = 0
    fatal: DavsyncError | None = None

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return self.fatal.exit_code
        failed = any(report.errors for report in self.collections.values())
        return EXIT_ITEMS_FAILED if failed else EXIT_OK

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "collections": {name: r.as_json() for name, r in self.collections.items()},
            "http_requests": self.http_requests,
        }
        if self.fatal is not None:
            out["error"] = str(self.fatal)
        return out


def state_path(config: Config) -> Path:
    return config.state_dir / "state.sqlite"


def make_authenticator(config: Config) -> Authenticator:
    """Like `credentials.authenticator.authenticator_for`, but basic auth never imports the
    provisioning client (PyJWT, cryptography): that would add ~0.15 s to every no-op run."""
    if config.server.auth == "provision":
        from davsync.credentials.authenticator import provisioning_authenticator

        return provisioning_authenticator(config)
    from davsync.dav.basic_auth import basic_authenticator

    return basic_authenticator(config)


def dav_url(config: Config, auth: Authenticator) -> str:
    if config.server.url:
        return config.server.url
    from davsync.credentials.authenticator import dav_url_for

    return dav_url_for(config, auth)


def configured_collections(config: Config) -> list[tuple[Kind, str, Path]]:
    out: list[tuple[Kind, str, Path]] = []
    if config.device.contacts is not None:
        out.append(("contacts", config.server.addressbook, config.device.contacts))
    if config.device.calendars is not None:
        out.append(("calendars", config.server.calendar, config.device.calendars))
    return out


def run_sync(
    config: Config, *, allow_mass_delete: bool = False, only: tuple[str, ...] = ()
) -> SyncResult:
    """Sync every configured collection; a fatal error (unreachable, refused) stops the run."""
    from davsync.dav.client import DavClient

    result = SyncResult()
    counter = RequestCounter()
    store = StateStore(state_path(config))
    try:
        auth = make_authenticator(config)
        server = config.server
        options = SyncOptions(
            conflict=server.conflict, allow_mass_delete=allow_mass_delete,
            concurrency=server.concurrency, device_label=server.device_name or socket.gethostname(),
        )
        base_url = dav_url(config, auth)
        with DavClient(
            base_url, auth, verify_tls=server.verify_tls, connect_timeout=server.connect_timeout,
            read_timeout=server.read_timeout, concurrency=server.concurrency,
            multiget_batch=server.multiget_batch, max_retries=server.max_retries, counter=counter,
        ) as client:
            for kind, name, path in configured_collections(config):
                if only and kind not in only and name not in only:
                    continue
                result.collections[name] = _sync_one(
                    client, store, options, kind, name, path, base_url
                )
    except DavsyncError as exc:
        result.fatal = exc
    finally:
        result.http_requests = counter.count
        store.close()
    return result


def _sync_one(
    client: DavClient, store: StateStore, options: SyncOptions, kind: Kind, name: str, path: Path,
    base_url: str,
) -> CollectionReport:
    key = f"{kind}:{name}@{base_url}"
    known = store.collection(key)
    if known is not None and known.url:
        remote = client.open_collection(known.url, kind, displayname=name)
    else:
        remote = client.find_collection(kind, name, displayname=name)
        store.save_collection(key, kind, remote.url)
    source = VdirSource(path, kind)
    engine = CollectionSync(key, source, remote, store, options, lambda: datetime.now(UTC))
    try:
        report = engine.run()
    except DavError as exc:  # a collection-level failure; other collections still run
        report = engine.report
        report.error(remote.url, str(exc))
    store.save_result(key, datetime.now(UTC).isoformat(timespec="seconds"), report.as_json())
    return report
