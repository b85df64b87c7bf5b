"""The doctor's checks of the DAV server: reachable (TLS), signed in, discovery, each configured
collection, sync-collection support (RFC 6578), and which quirks apply to it.

Requests go through the same `DavClient` a sync uses, with short timeouts and no retries: the
doctor asks once and says what it saw. On a refused login the provisioned credentials are not
replaced (that would hide the problem); they are provisioned only when none are stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from davsync.app.doctor import Found, Group
from davsync.app.sync import configured_collections, dav_url
from davsync.config import Config
from davsync.dav import xmlbodies as xb
from davsync.dav.api import Authenticator, DavAuthError
from davsync.dav.quirks import QUIRKS, ServerInfo
from davsync.errors import DavsyncError, ServerSettingError, UnreachableError
from davsync.secret import Secret

if TYPE_CHECKING:
    from davsync.dav.client import DavClient
    from davsync.dav.collection import Collection

# The longest the doctor waits to connect and for each answer (or the configured, if shorter).
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 15.0
REQUEST_TIMEOUT: Final = 20.0


class _NoRefresh:
    """An authenticator whose refused credentials stay refused: the doctor reports a 401
    instead of quietly provisioning new credentials over it."""

    def __init__(self, inner: Authenticator) -> None:
        self.inner = inner

    def credentials(self) -> tuple[str, Secret]:
        return self.inner.credentials()

    def refresh(self) -> bool:
        return False


def dav_group(config: Config) -> Group:
    return lambda found: check_server(config, found)


def check_server(config: Config, found: Found) -> None:
    try:
        auth, base_url = _sign_in(config, found)
    except ServerSettingError as exc:
        found.fail("auth", f"{config.path} {exc}")
        return
    except DavsyncError as exc:
        found.fail("auth", str(exc))
        return
    with _client(config, auth, base_url) as client:
        if not _reach(config, client, auth, found):
            return
        _check_collections(config, client, found)
        _check_every_collection(config, client, found)
        _report_quirks(client.server, found)


def _sign_in(config: Config, found: Found) -> tuple[Authenticator, str]:
    """The authenticator and the DAV URL; for `auth = "provision"`, the stored device
    credentials, provisioned (and said so) only when there are none."""
    if config.server.auth != "provision":
        from davsync.app.credentials import basic_authenticator

        basic = basic_authenticator(config)
        return basic, dav_url(config, basic)
    from davsync.app.credentials import provisioning_authenticator
    from davsync.credentials.store import load_device, open_secret_store

    store = open_secret_store(config.state_dir)
    stored = load_device(store) is not None
    provisioning = provisioning_authenticator(config, store=store)
    creds = provisioning.current()
    if not stored:
        found.note("auth", f"no device credentials were stored: provisioned this device "
                   f"({creds.device_id}) as {creds.username!r} for {creds.dav_url}")
    return _NoRefresh(provisioning), dav_url(config, provisioning)


def _client(config: Config, auth: Authenticator, base_url: str) -> DavClient:
    from davsync.dav.client import DavClient

    server = config.server
    return DavClient(
        base_url, auth, verify_tls=server.verify_tls,
        connect_timeout=min(server.connect_timeout, CONNECT_TIMEOUT),
        read_timeout=min(server.read_timeout, READ_TIMEOUT),
        request_timeout=min(server.request_timeout, REQUEST_TIMEOUT), max_retries=0,
    )


def _reach(config: Config, client: DavClient, auth: Authenticator, found: Found) -> bool:
    """One PROPFIND of the configured URL: does the server answer (TLS included), and does it
    take the credentials?"""
    try:
        response = client.request(
            "PROPFIND", client.url, headers={"Depth": "0", **xb.XML_CONTENT},
            content=xb.propfind((xb.CURRENT_USER_PRINCIPAL,)), follow_redirects=True,
        )
    except DavAuthError as exc:
        found.ok("server", f"{client.url} answers{_tls(config, client)}")
        found.fail("auth", str(exc))
        return False
    except (UnreachableError, DavsyncError) as exc:
        found.fail("server", str(exc))
        return False
    found.ok("server", f"{client.url} answers (HTTP {response.status_code})"
             f"{_tls(config, client)}")
    found.ok("auth", f"{config.server.auth.value} as {auth.credentials()[0]!r}")
    return True


def _tls(config: Config, client: DavClient) -> str:
    if not client.origin.startswith("https:"):
        return ", plain http"
    if not config.server.verify_tls:
        return ", TLS certificate NOT checked (verify_tls = false)"
    return ", TLS certificate verified"


def _check_collections(config: Config, client: DavClient, found: Found) -> None:
    from davsync.dav.discovery import find_collection

    create = config.server.create
    for kind, name, _ in configured_collections(config):
        label = f"collection {kind} {name!r}"
        try:
            collection = find_collection(client, kind, name, create=create)
        except ServerSettingError as exc:
            where = "discovery" if str(exc).startswith("[server] url") else label
            found.fail(where, f"{config.path} {exc}")
            continue
        except DavsyncError as exc:
            found.fail(label, str(exc))
            continue
        home = collection.url[: collection.url.rstrip("/").rfind("/") + 1]
        found.ok(f"discovery {kind}", f"home {home}")
        if not collection.exists:
            why = "create = true" if create else f"the account has no {kind} collection yet"
            found.note(label, f"{collection.url} does not exist; the first sync creates it "
                       f"({why})")
            continue
        found.ok(label, f"{collection.url} exists")
        _check_sync_collection(client, collection, found)


def _check_every_collection(config: Config, client: DavClient, found: Found) -> None:
    """Kinds configured with `collections = ...`: the account's collections of that kind are
    listed, and each listed name must be one of them (a sync would stop at a missing one)."""
    from davsync.app.sync import collection_kinds
    from davsync.dav.discovery import list_collections, unknown_collection

    for kind, parent, names in collection_kinds(config):
        label = f"collections {kind}"
        try:
            _, listed = list_collections(client, kind)
        except DavsyncError as exc:
            found.fail(label, str(exc))
            continue
        have = [c.name for c in listed]
        missing = [n for n in names or () if n not in have]
        if missing and not config.server.create:
            why = unknown_collection(f"[device] [{kind}] collections", kind, missing[0], have)
            found.fail(label, f"{config.path} {why}")
            continue
        shown = ", ".join(have) or "none yet"
        found.ok(label, f"{len(have)} on the account ({shown}), synced under {parent}")


def _check_sync_collection(client: DavClient, collection: Collection, found: Found) -> None:
    """RFC 6578: the collection gives a sync-token, so a sync reads only what changed."""
    from davsync.dav.multistatus import parse_multistatus
    from davsync.dav.quirks import identify

    name = f"sync-collection {collection.kind}"
    try:
        response = client.request(
            "PROPFIND", collection.url, headers={"Depth": "0", **xb.XML_CONTENT},
            content=xb.propfind((xb.SYNC_TOKEN, xb.SUPPORTED_REPORT_SET)),
        )
        own = parse_multistatus(response.content, collection.url).own(collection.path) \
            if response.status_code == 207 else None
    except DavsyncError as exc:
        found.fail(name, str(exc))
        return
    token = own.text(xb.SYNC_TOKEN) if own is not None else None
    client.learn(identify(sync_token=token))
    if token:
        found.ok(name, "supported (the server gave a sync-token): a sync reads only changes")
    else:
        found.note(name, "not supported (no sync-token): each sync compares the full list of "
                   "etags; slower on large collections, still correct")


def _report_quirks(server: ServerInfo, found: Found) -> None:
    if server.product is None:
        found.ok("quirks", "server software not recognised; davsync takes the portable "
                 "path everywhere")
        return
    applying = [q for q in QUIRKS if q.product == server.product
                and server.version >= q.min_version]
    version = ".".join(map(str, server.version))
    listed = ", ".join(f"{q.feature} ({q.rating})" for q in applying) or "none"
    found.ok("quirks", f"{server.product} {version}: {listed}")
