"""The SQLite credential store: hashes only, replacement, revocation across connections."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from davsync.server.store import CredentialStore, TooManyDevices, derive_username

FAST_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "credentials.sqlite3"


@pytest.fixture
def store(db: Path) -> CredentialStore:
    return CredentialStore(db, FAST_HASH)


def test_usernames_are_stable_per_issuer_and_subject() -> None:
    a = derive_username("https://a.example", "123")
    assert a == derive_username("https://a.example", "123")
    assert a != derive_username("https://b.example", "123")
    assert a != derive_username("https://a.example", "1234")
    assert a.isalnum() and a.islower()


def test_provision_check_and_plaintext_never_stored(store: CredentialStore, db: Path) -> None:
    user, password = store.provision("https://i", "sub", "dev1", "Laptop")
    assert store.check_password(user, password.reveal()) == "dev1"
    assert store.check_password(user, password.reveal() + "x") is None
    assert store.check_password("someone-else", password.reveal()) is None
    store.close()
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert password.reveal().encode() not in raw
    assert b"$argon2id$" in raw


def test_files_are_private(store: CredentialStore, db: Path) -> None:
    store.provision("https://i", "sub", "dev1", "Laptop")
    for path in db.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_second_device_gets_its_own_password(store: CredentialStore) -> None:
    user, p1 = store.provision("https://i", "sub", "dev1", "Laptop")
    user2, p2 = store.provision("https://i", "sub", "dev2", "Phone")
    assert user == user2 and p1 != p2
    assert store.check_password(user, p1.reveal()) == "dev1"
    assert store.check_password(user, p2.reveal()) == "dev2"


def test_reprovisioning_replaces_the_password(store: CredentialStore) -> None:
    user, old = store.provision("https://i", "sub", "dev1", "Laptop")
    generation = store.generation()
    _, new = store.provision("https://i", "sub", "dev1", "Laptop (new)")
    assert store.check_password(user, old.reveal()) is None
    assert store.check_password(user, new.reveal()) == "dev1"
    assert store.generation() > generation
    assert [d.name for d in store.devices(user)] == ["Laptop (new)"]


def test_revocation_is_seen_by_another_connection(store: CredentialStore, db: Path) -> None:
    user, password = store.provision("https://i", "sub", "dev1", "Laptop")
    other = CredentialStore(db, FAST_HASH)
    before = other.generation()
    assert store.revoke(user, "dev1")
    assert other.generation() == before + 1
    assert other.check_password(user, password.reveal()) is None
    assert not store.revoke(user, "dev1")  # already revoked
    assert store.devices(user)[0].revoked is not None


def test_device_limit(store: CredentialStore) -> None:
    store.provision("https://i", "sub", "dev1", "A", max_devices=2)
    store.provision("https://i", "sub", "dev2", "B", max_devices=2)
    store.provision("https://i", "sub", "dev2", "B again", max_devices=2)  # a replacement
    with pytest.raises(TooManyDevices, match="limit 2"):
        store.provision("https://i", "sub", "dev3", "C", max_devices=2)
    user = derive_username("https://i", "sub")
    store.revoke(user, "dev1")
    store.provision("https://i", "sub", "dev3", "C", max_devices=2)


def test_delete_account(store: CredentialStore) -> None:
    user, password = store.provision("https://i", "sub", "dev1", "Laptop", email="a@x.org")
    assert [a.email for a in store.accounts()] == ["a@x.org"]
    assert store.username_for("https://i", "sub") == user
    assert store.delete_account(user)
    assert store.check_password(user, password.reveal()) is None
    assert store.devices(user) == [] and not store.has_account(user)
    assert not store.delete_account(user)
