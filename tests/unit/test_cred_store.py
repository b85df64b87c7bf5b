"""The SecretStore contract, run by every backend, plus what only the 0600 file must do."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError

from davsync.credentials.store import (
    CredentialStoreError,
    DeviceCredentials,
    FileSecretStore,
    KeyringSecretStore,
    SecretStore,
    choose_backend,
    load_device,
    load_id_token,
    open_secret_store,
    save_device,
    save_id_token,
)
from davsync.errors import ConfigError
from davsync.secret import Secret


class MemoryKeyring(KeyringBackend):
    """keyring's own backend API, kept in a dict: the adapter is tested, not a Secret Service."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.locked = False

    def get_password(self, service: str, username: str) -> str | None:
        if self.locked:
            raise KeyringLocked("locked")
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.locked:
            raise KeyringLocked("locked")
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.entries:
            raise PasswordDeleteError("no such entry")
        del self.entries[(service, username)]


CREDS = DeviceCredentials(
    username="alice-laptop",
    password=Secret("device-pw-very-secret"),
    dav_url="http://127.0.0.1:5232/alice/",
    device_id="3f1c1d9e-4a8b-4a53-9a5e-0d3cf0f7e001",
    server="http://127.0.0.1:5233/provision",
)


class SecretStoreContract:
    """Every SecretStore runs these; subclasses provide the `store` fixture."""

    def test_empty_slot_is_none(self, store: SecretStore) -> None:
        assert store.get("device") is None

    def test_set_then_get_round_trips(self, store: SecretStore) -> None:
        store.set("device", {"a": "1", "b": "zwei ü"})
        assert store.get("device") == {"a": "1", "b": "zwei ü"}

    def test_set_replaces_whole_record(self, store: SecretStore) -> None:
        store.set("device", {"a": "1", "b": "2"})
        store.set("device", {"c": "3"})
        assert store.get("device") == {"c": "3"}

    def test_slots_are_independent(self, store: SecretStore) -> None:
        store.set("device", {"a": "1"})
        store.set("id_token", {"id_token": "t"})
        store.delete("device")
        assert store.get("device") is None
        assert store.get("id_token") == {"id_token": "t"}

    def test_delete_empty_slot_is_noop(self, store: SecretStore) -> None:
        store.delete("device")
        store.delete("device")
        assert store.get("device") is None

    def test_typed_device_credentials_round_trip(self, store: SecretStore) -> None:
        save_device(store, CREDS)
        assert load_device(store) == CREDS

    def test_incomplete_record_reads_as_no_credentials(self, store: SecretStore) -> None:
        store.set("device", {"username": "alice"})
        assert load_device(store) is None

    def test_id_token_round_trip(self, store: SecretStore) -> None:
        save_id_token(store, Secret("eyJ.token.sig"), "http://127.0.0.1:1/")
        assert load_id_token(store) == Secret("eyJ.token.sig")

    def test_describe_never_shows_a_secret(self, store: SecretStore) -> None:
        save_device(store, CREDS)
        assert "device-pw-very-secret" not in store.describe()


class TestFileStore(SecretStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileSecretStore:
        return FileSecretStore(tmp_path / "state" / "credentials.json")

    def test_file_is_0600_and_dir_0700(self, store: FileSecretStore) -> None:
        save_device(store, CREDS)
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700

    def test_0600_even_with_a_permissive_umask(self, store: FileSecretStore) -> None:
        old = os.umask(0)
        try:
            save_device(store, CREDS)
        finally:
            os.umask(old)
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    def test_refuses_a_file_others_can_read(self, store: FileSecretStore) -> None:
        save_device(store, CREDS)
        store.path.chmod(0o644)
        with pytest.raises(CredentialStoreError) as info:
            load_device(store)
        message = str(info.value)
        assert str(store.path) in message
        assert f"chmod 600 {store.path}" in message
        assert "device-pw-very-secret" not in message
        assert isinstance(info.value, ConfigError)

    def test_refuses_group_writable_too(self, store: FileSecretStore) -> None:
        save_device(store, CREDS)
        store.path.chmod(0o620)
        with pytest.raises(CredentialStoreError, match="0620"):
            store.get("device")

    def test_no_temp_files_left_behind(self, store: FileSecretStore) -> None:
        save_device(store, CREDS)
        save_device(store, CREDS)
        names = sorted(p.name for p in store.path.parent.iterdir())
        assert names == [".credentials.json.lock", "credentials.json"]

    def test_deleting_the_last_slot_removes_the_file(self, store: FileSecretStore) -> None:
        save_device(store, CREDS)
        store.delete("device")
        assert not store.path.exists()

    def test_damaged_file_error_names_file_and_hides_content(self, store: FileSecretStore) -> None:
        store.path.parent.mkdir(parents=True)
        fd = os.open(store.path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b'{"slots": {"device": {"password": "half-written-secret')
        os.close(fd)
        with pytest.raises(CredentialStoreError) as info:
            store.get("device")
        assert str(store.path) in str(info.value)
        assert "half-written-secret" not in str(info.value)


class TestKeyringStore(SecretStoreContract):
    @pytest.fixture
    def backend(self) -> MemoryKeyring:
        return MemoryKeyring()

    @pytest.fixture
    def store(self, backend: MemoryKeyring) -> KeyringSecretStore:
        return KeyringSecretStore(backend, "/home/alice/.local/state/davsync")

    def test_two_installations_do_not_share_entries(self, backend: MemoryKeyring) -> None:
        one = KeyringSecretStore(backend, "/state/one")
        two = KeyringSecretStore(backend, "/state/two")
        save_device(one, CREDS)
        assert load_device(two) is None

    def test_locked_keyring_gives_an_actionable_error(
        self, store: KeyringSecretStore, backend: MemoryKeyring
    ) -> None:
        backend.locked = True
        with pytest.raises(CredentialStoreError, match="DAVSYNC_KEYRING=0"):
            store.get("device")


@pytest.mark.parametrize(
    ("env", "available", "expected"),
    [
        (None, True, "keyring"),
        (None, False, "file"),
        ("", False, "file"),
        ("0", True, "file"),
        ("false", True, "file"),
        ("1", True, "keyring"),
        ("yes", True, "keyring"),
    ],
)
def test_choose_backend(env: str | None, available: bool, expected: str) -> None:
    assert choose_backend(env, available) == expected


@pytest.mark.parametrize(("env", "match"), [("1", "no usable keyring"), ("maybe", "must be 0")])
def test_choose_backend_refuses(env: str, match: str) -> None:
    with pytest.raises(CredentialStoreError, match=match):
        choose_backend(env, False)


def test_env_zero_forces_the_file_store(tmp_path: Path) -> None:
    store = open_secret_store(tmp_path, {"DAVSYNC_KEYRING": "0"})
    assert isinstance(store, FileSecretStore)
    assert store.path == tmp_path / "credentials.json"


@pytest.fixture
def fail_keyring() -> Iterator[None]:
    import keyring
    from keyring.backends import fail

    before: Any = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(before)


def test_fail_backend_falls_back_to_file(tmp_path: Path, fail_keyring: None) -> None:
    assert isinstance(open_secret_store(tmp_path, {}), FileSecretStore)


def test_usable_backend_is_chosen(tmp_path: Path) -> None:
    import keyring

    before: Any = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        store = open_secret_store(tmp_path, {})
    finally:
        keyring.set_keyring(before)
    assert isinstance(store, KeyringSecretStore)


def test_concurrent_writers_keep_every_slot(tmp_path: Path) -> None:
    """The daemon and a CLI command writing different slots must not drop each other's."""
    import threading

    path = tmp_path / "credentials.json"
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        store = FileSecretStore(path)
        barrier.wait()
        for round_ in range(5):
            store.set(f"slot{n}", {"round": str(round_)})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    store = FileSecretStore(path)
    assert [store.get(f"slot{n}") for n in range(8)] == [{"round": "4"}] * 8
