"""Credentials wiring: the only place that reads `[server]`'s authentication settings and
builds the authenticators, the provisioning client and their HTTP client from them.

Basic auth must stay light: a no-op sync run imports this module, so the provisioning client
(httpx, PyJWT, cryptography) is imported only when `auth = "provision"` asks for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from davsync.dav.basic_auth import BasicAuthenticator
from davsync.errors import AuthError, DavsyncError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import httpx

    from davsync.config import Config, ServerConfig
    from davsync.config.schema import DaemonMode
    from davsync.credentials.authenticator import ProvisioningAuthenticator, StatusFile
    from davsync.credentials.store import DeviceCredentials, SecretStore
    from davsync.dav.api import Authenticator


def http_client(server: ServerConfig) -> httpx.Client:
    """The HTTP client for provisioning and sign-in, from the one factory: the configured
    timeouts and TLS checking, recorded with `--record-http`."""
    from davsync.app import recording
    from davsync.dav.http import http_client as build

    return build(verify=server.verify_tls, connect_timeout=server.connect_timeout,
                 read_timeout=server.read_timeout, wrap=recording.transport_wrapper("provision"))


def basic_authenticator(config: Config) -> BasicAuthenticator:
    """`[server] username` with `password` or `password_command` (run now, once per run)."""
    username = config.server.username
    if username is None:  # config.py requires it with auth = "basic"
        raise AuthError(f'{config.path} [server] username: is required with auth = "basic"')
    return BasicAuthenticator(username, config.server.resolve_password())


def status_file(config: Config) -> StatusFile:
    from davsync.credentials.authenticator import STATUS_FILE, StatusFile

    return StatusFile(config.state_dir / STATUS_FILE)


def make_provisioner(config: Config, store: SecretStore) -> Callable[[], DeviceCredentials]:
    """assertion source + device identity + provisioning client, as one call."""
    from davsync.credentials.device import device_id, device_name
    from davsync.credentials.provision import ProvisioningClient, assertion_source

    server = config.server
    if server.provision_url is None:  # config.py guarantees it with auth = "provision"
        raise AuthError(
            f'{config.path} [server] provision_url: is required with auth = "provision"'
        )
    provision_url = server.provision_url
    source = assertion_source(server.assertion_command, store)

    def provision() -> DeviceCredentials:
        assertion = source.assertion()
        with http_client(server) as http:
            client = ProvisioningClient(provision_url, http)
            return client.provision(
                assertion, device_name(server.device_name), device_id(config.state_dir)
            )

    return provision


def provisioning_authenticator(
    config: Config, *, scheduled: bool = False, store: SecretStore | None = None
) -> ProvisioningAuthenticator:
    from davsync.credentials.authenticator import ProvisioningAuthenticator
    from davsync.credentials.store import open_secret_store

    store = store or open_secret_store(config.state_dir)
    return ProvisioningAuthenticator(
        store, make_provisioner(config, store), status_file(config), scheduled=scheduled
    )


def authenticator_for(config: Config, *, scheduled: bool = False) -> Authenticator:
    """The authenticator `[server] auth` asks for; `scheduled=True` from the daemon."""
    if config.server.auth == "provision":
        return provisioning_authenticator(config, scheduled=scheduled)
    return basic_authenticator(config)


def dav_url_for(config: Config, auth: Authenticator) -> str:
    """`[server] url` when configured, else the dav_url provisioning gave this device."""
    if config.server.url:
        return config.server.url
    from davsync.credentials.authenticator import ProvisioningAuthenticator

    if isinstance(auth, ProvisioningAuthenticator):
        return auth.dav_url()
    raise AuthError(f'{config.path} [server] url: is required with auth = "basic"')


def mode_in_force(config: Config) -> tuple[DaemonMode, str]:
    """What `davsync run` does, and who said so: the mode the provisioning server gave this
    device (`davsync server mode`), when it gave one, else `[daemon] mode`."""
    from davsync.config.schema import DaemonMode

    given = _provisioned_mode(config)
    if given is not None:
        return DaemonMode(given), "the provisioning server"
    return config.daemon.mode, config.where("daemon")


def _provisioned_mode(config: Config) -> str | None:
    """The cached answer's mode; None without provisioning or when the store cannot be read
    (the sync run reports that)."""
    if not config.has_server() or config.server.auth != "provision":
        return None
    from davsync.credentials.store import load_device, open_secret_store

    try:
        creds = load_device(open_secret_store(config.state_dir))
    except DavsyncError as exc:
        log.warning("cannot read the provisioned mode: %s", exc)
        return None
    return creds.mode if creds is not None else None


def auth_status(config: Config, store: SecretStore | None = None) -> dict[str, Any]:
    """Who this installation is signed in as, and the last provisioning outcome; no secrets.

    A login the DAV server refused in the last run overrides "signed_in" until a run gets
    through: the credentials are there, but they do not work."""
    from davsync.credentials.authenticator import SIGNED_IN
    from davsync.runstatus import REFUSED, last_failure

    out = _auth_status(config, store)
    failure = last_failure(config.state_dir)
    if failure is not None and failure.get("state") == REFUSED and out["state"] == SIGNED_IN \
            and _not_before(failure.get("when"), out.get("when")):
        out.update({k: failure.get(k) for k in ("state", "reason", "when")})
        out["signed_in"] = False
    return out


def _not_before(when: Any, other: Any) -> bool:
    """Whether the ISO time `when` is not older than `other` (True when either is unknown)."""
    try:
        return bool(datetime.fromisoformat(str(when)) >= datetime.fromisoformat(str(other)))
    except ValueError:
        return True


def _auth_status(config: Config, store: SecretStore | None) -> dict[str, Any]:
    from davsync.credentials.authenticator import SIGNED_IN, SIGNED_OUT
    from davsync.credentials.provision import token_usable
    from davsync.credentials.store import load_device, load_id_token, open_secret_store

    server = config.server
    if server.auth != "provision":
        return {
            "mode": "basic",
            "signed_in": True,
            "username": server.username,
            "device_id": None,
            "server": server.url,
            "state": SIGNED_IN,
            "reason": None,
            "when": None,
            "next_attempt_after": None,
        }
    store = store or open_secret_store(config.state_dir)
    creds = load_device(store)
    status = status_file(config).load()
    out: dict[str, Any] = {
        "mode": "provision",
        "signed_in": creds is not None,
        "username": creds.username if creds else None,
        "device_id": creds.device_id if creds else None,
        "server": creds.dav_url if creds else server.url,
        "provision_url": server.provision_url,
        "store": store.describe(),
        "state": SIGNED_IN if creds else SIGNED_OUT,
        "reason": None,
        "when": None,
        "next_attempt_after": None,
    }
    if status is not None:
        data = status.to_json()
        out.update({k: data[k] for k in ("state", "reason", "when", "next_attempt_after")})
        if creds is None and status.state == SIGNED_IN:
            out["state"] = SIGNED_OUT  # the credentials were removed behind our back
    if not server.assertion_command:
        token = load_id_token(store)
        out["login_required"] = token is None or not token_usable(token, time.time())
        if out["login_required"] and not out["reason"]:
            out["reason"] = (
                "the sign-in from `davsync login` is missing or expired: run `davsync login`"
            )
    return out
