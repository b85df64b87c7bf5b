"""Refresh-once, the status record and its backoff, with a fake provisioner (pure logic)."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from davsync.credentials.authenticator import (
    REPROVISION_FAILED,
    SIGNED_IN,
    AuthStatus,
    ProvisioningAuthenticator,
    StatusFile,
    after_failure,
    after_logout,
    backoff_delay,
)
from davsync.credentials.provision import LoginRequired, ProvisionError, ProvisionUnreachable
from davsync.credentials.store import DeviceCredentials, FileSecretStore, load_device, save_device
from davsync.errors import AuthError, DavsyncError
from davsync.secret import Secret

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeProvisioner:
    """Hands out numbered credentials, or raises what it is told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: DavsyncError | None = None

    def __call__(self) -> DeviceCredentials:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return DeviceCredentials(
            f"dev{self.calls}",
            Secret(f"pw{self.calls}"),
            "http://127.0.0.1:1/u/",
            "id-1",
            "http://127.0.0.1:2/provision",
        )


@pytest.fixture
def store(tmp_path: Path) -> FileSecretStore:
    return FileSecretStore(tmp_path / "credentials.json")


@pytest.fixture
def status(tmp_path: Path) -> StatusFile:
    return StatusFile(tmp_path / "auth-status.json")


@pytest.fixture
def fake() -> FakeProvisioner:
    return FakeProvisioner()


def _auth(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile, scheduled: bool = False
) -> ProvisioningAuthenticator:
    return ProvisioningAuthenticator(store, fake, status, scheduled=scheduled, clock=lambda: NOW)


def test_provisions_when_nothing_is_stored_then_reuses(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    auth = _auth(store, fake, status)
    assert auth.credentials() == ("dev1", Secret("pw1"))
    assert auth.credentials() == ("dev1", Secret("pw1"))
    assert fake.calls == 1
    assert load_device(store) is not None
    loaded = status.load()
    assert loaded is not None and loaded.state == SIGNED_IN
    assert stat.S_IMODE(status.path.stat().st_mode) == 0o600


def test_stored_credentials_are_used_without_provisioning(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    save_device(store, DeviceCredentials("kept", Secret("p"), "http://127.0.0.1:1/", "i", "s"))
    assert _auth(store, fake, status).credentials()[0] == "kept"
    assert fake.calls == 0


def test_refresh_once_per_run(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    auth = _auth(store, fake, status)
    auth.credentials()
    assert auth.refresh() is True
    assert auth.credentials() == ("dev2", Secret("pw2"))
    assert auth.refresh() is False
    assert auth.refresh() is False
    assert fake.calls == 2
    creds = load_device(store)
    assert creds is not None and creds.username == "dev2"


def test_failed_refresh_raises_records_status_and_never_retries(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    auth = _auth(store, fake, status)
    auth.credentials()
    fake.error = ProvisionError("http://127.0.0.1:2/provision: identity refused", 401)
    with pytest.raises(AuthError, match="identity refused"):
        auth.refresh()
    assert auth.refresh() is False
    assert fake.calls == 2
    assert load_device(store) is None  # the refused credentials are gone
    recorded = status.load()
    assert recorded is not None
    assert recorded.state == REPROVISION_FAILED
    assert recorded.reason is not None and "identity refused" in recorded.reason
    assert recorded.next_attempt_after == NOW + timedelta(seconds=60)


def test_concurrent_401s_refresh_once_and_waiters_retry(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    gate = threading.Event()
    slow_calls: list[int] = []

    def slow() -> DeviceCredentials:
        slow_calls.append(1)
        gate.wait(5)
        return fake()

    auth = ProvisioningAuthenticator(store, slow, status, clock=lambda: NOW)
    save_device(store, DeviceCredentials("old", Secret("p"), "http://127.0.0.1:1/", "i", "s"))
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(auth.refresh())) for _ in range(3)]
    for t in threads:
        t.start()
    while not slow_calls:
        threading.Event().wait(0.01)
    threading.Event().wait(0.1)  # let the other two block on the refresh
    gate.set()
    for t in threads:
        t.join(5)
    assert sorted(results) == [True, True, True]
    assert len(slow_calls) == 1
    assert auth.refresh() is False


@pytest.mark.parametrize(
    ("failures", "seconds"), [(1, 60), (2, 120), (3, 240), (10, 6 * 3600), (40, 6 * 3600)]
)
def test_backoff_delay(failures: int, seconds: float) -> None:
    assert backoff_delay(failures) == seconds


def test_consecutive_failures_back_off_and_honour_retry_after() -> None:
    first = after_failure(None, "down", NOW)
    second = after_failure(first, "down", NOW)
    assert (first.failures, second.failures) == (1, 2)
    assert second.next_attempt_after == NOW + timedelta(seconds=120)
    limited = after_failure(second, "rate limited", NOW, retry_after=3600)
    assert limited.next_attempt_after == NOW + timedelta(seconds=3600)
    after_success = after_failure(AuthStatus(SIGNED_IN, NOW), "down", NOW)
    assert after_success.failures == 1


def test_scheduled_run_honours_backoff_interactive_does_not(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    status.save(after_failure(None, "issuer said no", NOW - timedelta(seconds=10)))
    with pytest.raises(AuthError, match="issuer said no") as info:
        _auth(store, fake, status, scheduled=True).credentials()
    assert "davsync login" in str(info.value)
    assert fake.calls == 0
    assert _auth(store, fake, status).credentials()[0] == "dev1"


def test_expired_login_is_recorded_with_the_hint(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    fake.error = LoginRequired("the sign-in from `davsync login` has expired: run `davsync login`")
    with pytest.raises(LoginRequired):
        _auth(store, fake, status).credentials()
    recorded = status.load()
    assert recorded is not None and "run `davsync login`" in (recorded.reason or "")


def test_unreachable_is_recorded_too(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    fake.error = ProvisionUnreachable("http://127.0.0.1:2/provision: cannot reach")
    with pytest.raises(ProvisionUnreachable):
        _auth(store, fake, status).credentials()
    recorded = status.load()
    assert recorded is not None and recorded.state == REPROVISION_FAILED


def test_status_round_trips_and_tolerates_garbage(status: StatusFile) -> None:
    record = after_failure(None, "why", NOW, retry_after=5)
    status.save(record)
    assert status.load() == record
    status.path.write_text("{not json", encoding="utf-8")
    assert status.load() is None


def test_after_a_failed_refresh_credentials_do_not_provision_again(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    auth = _auth(store, fake, status)
    auth.credentials()
    fake.error = ProvisionError("refused", 401)
    with pytest.raises(AuthError):
        auth.refresh()
    with pytest.raises(AuthError, match="refused"):
        auth.credentials()
    assert fake.calls == 2


def test_after_logout_only_login_provisions(
    store: FileSecretStore, fake: FakeProvisioner, status: StatusFile
) -> None:
    status.save(after_logout(NOW))
    with pytest.raises(LoginRequired, match="davsync login"):
        _auth(store, fake, status).credentials()
    assert fake.calls == 0
    _auth(store, fake, status).provision()  # what `davsync login` does
    assert _auth(store, fake, status).credentials()[0] == "dev1"
