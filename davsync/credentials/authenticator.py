"""Device credentials for the DAV client: stored ones, else provisioned ones, re-provisioned once.

`ProvisioningAuthenticator` implements `davsync.dav.api.Authenticator`. A 401 from the DAV
server makes the client call `refresh()`: the stored credentials are dropped and provisioned
again, at most once per run, so a refused identity can never become a loop. Every outcome is
written to `auth-status.json` in the state directory, which `davsync status` / `whoami` show and
which spaces out the daemon's next attempts after failures (exponential backoff).

The composition helpers at the bottom (`authenticator_for`, `dav_url_for`, `auth_status`) are
what the sync engine and the status command call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from davsync.config import Config
from davsync.credentials.device import device_id, device_name
from davsync.credentials.provision import (
    LoginRequired,
    ProvisionError,
    ProvisioningClient,
    assertion_source,
    http_client,
    token_usable,
)
from davsync.credentials.store import (
    DEVICE_SLOT,
    DeviceCredentials,
    SecretStore,
    load_device,
    load_id_token,
    open_secret_store,
    save_device,
    write_private_file,
)
from davsync.dav.api import Authenticator
from davsync.errors import AuthError, UnreachableError
from davsync.runstatus import REFUSED, last_failure
from davsync.secret import Secret

log = logging.getLogger(__name__)

STATUS_FILE: Final = "auth-status.json"
BACKOFF_BASE: Final = 60.0  # seconds after the first failure
BACKOFF_MAX: Final = 6 * 3600.0
SIGNED_IN: Final = "signed_in"
REPROVISION_FAILED: Final = "reprovision_failed"
SIGNED_OUT: Final = "signed_out"


# --- the status record (pure) --------------------------------------------------------------


@dataclass(frozen=True)
class AuthStatus:
    """The last provisioning outcome; `failures` counts consecutive ones for the backoff."""

    state: str
    when: datetime
    reason: str | None = None
    next_attempt_after: datetime | None = None
    failures: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["when"] = self.when.isoformat()
        data["next_attempt_after"] = (
            self.next_attempt_after.isoformat() if self.next_attempt_after else None
        )
        return data

    @classmethod
    def from_json(cls, data: Any) -> AuthStatus | None:
        try:
            nxt = data.get("next_attempt_after")
            return cls(
                state=str(data["state"]),
                when=datetime.fromisoformat(data["when"]),
                reason=data.get("reason"),
                next_attempt_after=datetime.fromisoformat(nxt) if nxt else None,
                failures=int(data.get("failures", 0)),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def blocks_attempt(self, now: datetime) -> bool:
        return (
            self.state == REPROVISION_FAILED
            and self.next_attempt_after is not None
            and now < self.next_attempt_after
        )


def backoff_delay(failures: int) -> float:
    """60 s, 2 min, 4 min, ... capped at 6 h: a refusing issuer is not hammered by the daemon."""
    return min(BACKOFF_BASE * 2.0 ** max(failures - 1, 0), BACKOFF_MAX)


def after_failure(
    previous: AuthStatus | None, reason: str, now: datetime, retry_after: float | None = None
) -> AuthStatus:
    failures = previous.failures + 1 if previous and previous.state == REPROVISION_FAILED else 1
    delay = max(backoff_delay(failures), retry_after or 0.0)
    return AuthStatus(REPROVISION_FAILED, now, reason, now + timedelta(seconds=delay), failures)


def after_success(now: datetime) -> AuthStatus:
    return AuthStatus(SIGNED_IN, now)


def after_logout(now: datetime, reason: str | None = None) -> AuthStatus:
    return AuthStatus(SIGNED_OUT, now, reason)


class StatusFile:
    """auth-status.json: small, not secret, but written 0600 and atomically like the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> AuthStatus | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("%s: unreadable, ignoring it", self.path)
            return None
        return AuthStatus.from_json(data)

    def save(self, status: AuthStatus) -> None:
        body = json.dumps(status.to_json(), indent=1, sort_keys=True) + "\n"
        write_private_file(self.path, body.encode("utf-8"))


# --- the authenticator ---------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ProvisioningAuthenticator:
    """Stored device credentials, provisioned on demand, refreshed at most once per run.

    `scheduled=True` (the daemon) honours the backoff in the status file before provisioning;
    an interactive run always tries, because the user may just have fixed the cause.
    """

    def __init__(
        self,
        store: SecretStore,
        provisioner: Callable[[], DeviceCredentials],
        status: StatusFile,
        *,
        scheduled: bool = False,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.provisioner = provisioner
        self.status = status
        self.scheduled = scheduled
        self.clock = clock
        self._creds: DeviceCredentials | None = None
        self._lock = threading.RLock()  # guards _creds and provisioning
        self._refresh_lock = threading.Lock()
        self._refreshed = False
        self._refresh_ok = False
        self._failure: AuthError | UnreachableError | None = None

    def current(self) -> DeviceCredentials:
        """The credentials to use: from memory, the store, or a fresh provisioning."""
        with self._lock:
            if self._creds is None:
                self._creds = load_device(self.store)
            if self._creds is None:
                if self._failure is not None:
                    raise self._failure  # one failed provisioning per run is enough
                self._check_status()
                self._creds = self.provision()
            return self._creds

    def credentials(self) -> tuple[str, Secret]:
        creds = self.current()
        return creds.username, creds.password

    def dav_url(self) -> str:
        return self.current().dav_url

    def refresh(self) -> bool:
        """Drop the refused credentials and provision again, once per run.

        A thread that had to wait while another one refreshed gets True too: it retries with
        the new credentials instead of failing its request. Any later call returns False.
        Provisioning failures propagate (AuthError / UnreachableError, exit code 3).
        """
        waited = not self._refresh_lock.acquire(blocking=False)
        if waited:
            self._refresh_lock.acquire()
        try:
            if self._refreshed:
                return waited and self._refresh_ok
            self._refreshed = True
            log.warning("the DAV server refused this device's credentials; provisioning again")
            with self._lock:
                self._creds = None
                self.store.delete(DEVICE_SLOT)
                self._creds = self.provision()
            self._refresh_ok = True
            return True
        finally:
            self._refresh_lock.release()

    def provision(self) -> DeviceCredentials:
        """Provision now (ignoring the backoff), store the result and record the outcome."""
        now = self.clock()
        try:
            creds = self.provisioner()
        except (AuthError, UnreachableError) as exc:
            retry = exc.retry_after if isinstance(exc, ProvisionError) else None
            self.status.save(after_failure(self.status.load(), str(exc), now, retry))
            self._failure = exc
            raise
        save_device(self.store, creds)
        self.status.save(after_success(now))
        self._failure = None
        log.info(
            "provisioned device %s as %r for %s", creds.device_id, creds.username, creds.dav_url
        )
        with self._lock:
            self._creds = creds
        return creds

    def _check_status(self) -> None:
        """Provision on demand, except after `davsync logout` or (daemon only) during backoff."""
        status = self.status.load()
        if status is None:
            return
        if status.state == SIGNED_OUT:
            raise LoginRequired(
                "this device was signed out with `davsync logout`: run `davsync login`"
            )
        now = self.clock()
        if self.scheduled and status.blocks_attempt(now):
            assert status.next_attempt_after is not None
            raise AuthError(
                f"provisioning failed at {status.when:%Y-%m-%d %H:%M:%S %Z} ({status.reason}); "
                f"next attempt after {status.next_attempt_after:%Y-%m-%d %H:%M:%S %Z}, "
                "or run `davsync login` to try now"
            )


# --- composition for the engine and the commands -------------------------------------------


def status_file(config: Config) -> StatusFile:
    return StatusFile(config.state_dir / STATUS_FILE)


def make_provisioner(config: Config, store: SecretStore) -> Callable[[], DeviceCredentials]:
    """assertion source + device identity + provisioning client, as one call."""
    server = config.server
    if server.provision_url is None:  # config.py guarantees it with auth = "provision"
        raise AuthError(
            f'{config.path} [server] provision_url: is required with auth = "provision"'
        )
    provision_url = server.provision_url
    source = assertion_source(server, store)

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
    store = store or open_secret_store(config.state_dir)
    return ProvisioningAuthenticator(
        store, make_provisioner(config, store), status_file(config), scheduled=scheduled
    )


def authenticator_for(config: Config, *, scheduled: bool = False) -> Authenticator:
    """The authenticator `[server] auth` asks for; `scheduled=True` from the daemon."""
    if config.server.auth == "provision":
        return provisioning_authenticator(config, scheduled=scheduled)
    return _basic_authenticator(config)


def _basic_authenticator(config: Config) -> Authenticator:
    # The DAV room owns basic auth; imported late so provisioning never depends on it.
    from davsync.dav.basic_auth import basic_authenticator

    return basic_authenticator(config)


def dav_url_for(config: Config, auth: Authenticator) -> str:
    """`[server] url` when configured, else the dav_url provisioning gave this device."""
    if config.server.url:
        return config.server.url
    if isinstance(auth, ProvisioningAuthenticator):
        return auth.dav_url()
    raise AuthError(f'{config.path} [server] url: is required with auth = "basic"')


def auth_status(config: Config, store: SecretStore | None = None) -> dict[str, Any]:
    """Who this installation is signed in as, and the last provisioning outcome; no secrets.

    A login the DAV server refused in the last run overrides "signed_in" until a run gets
    through: the credentials are there, but they do not work."""
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
