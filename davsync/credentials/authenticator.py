"""Device credentials for the DAV client: stored ones, else provisioned ones, re-provisioned once.

`ProvisioningAuthenticator` implements `davsync.dav.api.Authenticator`. A 401 from the DAV
server makes the client call `refresh()`: the stored credentials are dropped and provisioned
again, at most once per run, so a refused identity can never become a loop. Every outcome is
written to `auth-status.json` in the state directory, which `davsync status` / `whoami` show and
which spaces out the daemon's next attempts after failures (exponential backoff).

It takes plain values (a secret store, a provisioning callable, a status file); the wiring from
the configuration lives in the composition root, `davsync/app/credentials.py`. Nothing here
imports the DAV client: the authenticator satisfies `dav.api.Authenticator` by its shape.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from davsync.core.retry import backoff
from davsync.credentials.provision import LoginRequired, ProvisionError
from davsync.credentials.store import (
    DEVICE_SLOT,
    DeviceCredentials,
    SecretStore,
    load_device,
    save_device,
    write_private_file,
)
from davsync.errors import AuthError, UnreachableError
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
    return backoff(max(failures - 1, 0), 1.0, base=BACKOFF_BASE, cap=BACKOFF_MAX)


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
