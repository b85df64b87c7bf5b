"""The SQLite credential store: hashes only, replacement, revocation across connections."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from davsync.server.credential_db import SCHEMA, SCHEMA_VERSION
from davsync.server.store import (
    Blocked,
    CredentialStore,
    NoAccount,
    TooManyDevices,
    derive_username,
)

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


def test_delete_account_removes_app_passwords_too(store: CredentialStore, db: Path) -> None:
    user, _ = store.provision("https://i", "sub", "dev1", "Laptop")
    _, password = store.add_app_password(user, "Pixel DAVx5")
    assert store.delete_account(user)
    assert store.check_password(user, password.reveal()) is None
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM devices").fetchone() == (0,)


def test_app_password_is_listed_checked_and_revoked_like_a_device(
    store: CredentialStore, db: Path
) -> None:
    user, _ = store.provision("https://i", "sub", "dev1", "Laptop")
    app_id, password = store.add_app_password(user, "Pixel DAVx5")
    assert app_id.startswith("app-")
    assert store.check_password(user, password.reveal()) == app_id
    listed = {d.device_id: d for d in store.devices(user)}
    assert (listed[app_id].kind, listed[app_id].name) == ("app", "Pixel DAVx5")
    assert listed["dev1"].kind == "device"
    assert store.counts()[1:] == (1, 1)
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert password.reveal().encode() not in raw
    assert store.revoke(user, app_id)
    assert store.check_password(user, password.reveal()) is None


def test_app_password_needs_an_account_unless_an_identity_comes_with_it(
    store: CredentialStore,
) -> None:
    with pytest.raises(NoAccount):
        store.add_app_password("alice", "Thunderbird")
    assert store.create_local_account("alice") and not store.create_local_account("alice")
    _, password = store.add_app_password("alice", "Thunderbird")
    assert store.check_password("alice", password.reveal())
    user = derive_username("https://i", "new")
    _, other = store.add_app_password(user, "DAVx5", identity=("https://i", "new", None))
    assert store.username_for("https://i", "new") == user
    assert store.check_password(user, other.reveal())


def test_app_passwords_count_towards_the_device_limit_when_asked(store: CredentialStore) -> None:
    user, _ = store.provision("https://i", "sub", "dev1", "Laptop")
    store.add_app_password(user, "A", max_devices=2)
    with pytest.raises(TooManyDevices):
        store.add_app_password(user, "B", max_devices=2)
    store.add_app_password(user, "B")  # the admin is not limited


def test_blocked_device_cannot_provision_until_unblocked(store: CredentialStore) -> None:
    user, password = store.provision("https://i", "sub", "dev1", "Laptop")
    generation = store.generation()
    assert store.block(user, "dev1")
    assert store.generation() > generation
    assert store.check_password(user, password.reveal()) is None
    with pytest.raises(Blocked) as info:
        store.provision("https://i", "sub", "dev1", "Laptop")
    assert (info.value.scope, info.value.device_id) == ("device", "dev1")
    store.provision("https://i", "sub", "dev2", "Phone")  # other devices are not blocked
    assert store.devices(user)[0].blocked is not None
    assert store.unblock(user, "dev1") and not store.unblock(user, "dev1")
    _, fresh = store.provision("https://i", "sub", "dev1", "Laptop")
    assert store.check_password(user, fresh.reveal()) == "dev1"
    assert not store.block(user, "no-such-device")


def test_blocked_account_loses_every_credential_and_gets_no_new_one(
    store: CredentialStore,
) -> None:
    user, device = store.provision("https://i", "sub", "dev1", "Laptop")
    _, app = store.add_app_password(user, "DAVx5")
    assert store.block(user)
    assert store.check_password(user, device.reveal()) is None
    assert store.check_password(user, app.reveal()) is None
    for attempt in (lambda: store.provision("https://i", "sub", "dev9", "New"),
                    lambda: store.add_app_password(user, "Another"),
                    lambda: store.add_app_password(user, "x", identity=("https://i", "sub", None))):
        with pytest.raises(Blocked) as info:
            attempt()
        assert info.value.scope == "account"
    assert store.accounts()[0].blocked is not None
    assert store.unblock(user)
    _, fresh = store.provision("https://i", "sub", "dev1", "Laptop")
    assert store.check_password(user, fresh.reveal()) == "dev1"
    assert store.check_password(user, app.reveal()) is None  # revoked app passwords stay so
    assert not store.block("nobody")


def test_schema_1_database_is_migrated(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as raw:
        raw.executescript(SCHEMA)
        raw.execute("INSERT INTO accounts VALUES ('u1', 'https://i', 's', NULL, 1.0)")
        raw.execute("INSERT INTO devices (username, device_id, name, created, provisioned)"
                    " VALUES ('u1', 'dev1', 'Old', 1.0, 1.0)")
    store = CredentialStore(db, FAST_HASH)
    assert [(d.device_id, d.kind, d.blocked) for d in store.devices("u1")] == [
        ("dev1", "device", None)]
    assert store.block("u1")
    store.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (
            SCHEMA_VERSION,)
    assert CredentialStore(db, FAST_HASH).accounts()[0].blocked is not None
