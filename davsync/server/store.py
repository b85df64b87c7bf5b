"""The credential store: accounts keyed by (iss, sub), their devices' and app passwords' hashes,
and the admin's blocks.

SQLite in WAL mode, file mode 0600, shared by the running server and the admin commands
(`davsync server revoke` in another process takes effect on the server's next request).
Only slow salted hashes (argon2id) of passwords are stored, never the passwords.
Every revocation bumps `generation`, which login caches compare on each request.

A credential is a row of `devices`: `kind` "device" (a davsync client, provisioned with an
identity assertion) or "app" (an app password for a standard CardDAV/CalDAV client, made by
the admin or the self-service endpoint). A blocked device or account is revoked and may not be
provisioned again until the admin unblocks it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from davsync.errors import DavsyncError
from davsync.secret import Secret
from davsync.sqlite import Version, migrate, open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0), ('schema', 1);
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    iss TEXT NOT NULL,
    sub TEXT NOT NULL,
    email TEXT,
    created REAL NOT NULL,
    UNIQUE (iss, sub)
);
CREATE TABLE IF NOT EXISTS devices (
    username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT,
    created REAL NOT NULL,
    provisioned REAL NOT NULL,
    last_used REAL,
    revoked REAL,
    PRIMARY KEY (username, device_id)
);
"""
# Append only: step N turns schema N into N + 1. Step 1 -> 2: app passwords and blocks.
MIGRATIONS: tuple[str, ...] = (
    """
    ALTER TABLE devices ADD COLUMN kind TEXT NOT NULL DEFAULT 'device';
    ALTER TABLE devices ADD COLUMN blocked REAL;
    ALTER TABLE accounts ADD COLUMN blocked REAL
    """,
    # 2 -> 3: the daemon mode an admin set for an account (NULL: the device's own config).
    """
    ALTER TABLE accounts ADD COLUMN mode TEXT
    """,
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)
_SCHEMA_SLOT = Version(  # older than the use of user_version: the number lives in meta
    read="SELECT value FROM meta WHERE key = 'schema'",
    write="UPDATE meta SET value = {number} WHERE key = 'schema'",
)
DEVICE = "device"
APP = "app"
LOCAL_ISSUER = "local"  # accounts the admin made with `app-password --create`: no identity


class TooManyDevices(DavsyncError):
    """The account already has `max_devices` active devices; revoke one first."""


class Blocked(DavsyncError):
    """The admin blocked this device (`scope` "device") or its whole account ("account")."""

    def __init__(self, scope: str, username: str, device_id: str | None = None) -> None:
        what = f"device {device_id!r} of account {username}" if scope == DEVICE else (
            f"account {username}")
        super().__init__(f"{what} is blocked by the server's administrator")
        self.scope = scope
        self.username = username
        self.device_id = device_id


class NoAccount(DavsyncError):
    """There is no account with this username."""


def derive_username(iss: str, sub: str) -> str:
    """A stable DAV username for one (issuer, subject): the same on every server and reinstall.

    Never the e-mail address: it can change hands and is not unique across issuers.
    Lower-case letters and digits only, so it is a safe Radicale path component.
    """
    digest = hashlib.sha256(f"{iss}\n{sub}".encode()).digest()
    return "u" + base64.b32encode(digest).decode("ascii").lower()[:24]


def new_device_password() -> Secret:
    return Secret(secrets.token_urlsafe(32))


def new_app_id() -> str:
    """An app password's id: short enough to type in `davsync server revoke USER ID`."""
    return "app-" + secrets.token_hex(4)


def default_hasher() -> PasswordHasher:
    """argon2id with OWASP's minimum profile (19 MiB, 2 passes): about 50-90 ms per check.

    Device passwords are 256-bit random tokens, so the hash guards a stolen database, not
    guessable secrets; the heavier RFC 9106 profile (64 MiB) cost 0.5 s per check on a small
    server, which a sync's first request and every failed login would pay.
    """
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@dataclass(frozen=True)
class Device:
    username: str
    device_id: str
    name: str
    created: float
    provisioned: float
    last_used: float | None
    revoked: float | None
    kind: str = DEVICE
    blocked: float | None = None


@dataclass(frozen=True)
class Account:
    username: str
    iss: str
    sub: str
    email: str | None
    created: float
    active_devices: int
    blocked: float | None = None


class CredentialStore:
    """Thread-safe access to the credential database (one connection behind a lock).

    Password hashing and checking happen outside the lock: they are the slow part.
    """

    def __init__(
        self,
        path: Path,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.hasher = hasher or default_hasher()
        self.clock = clock
        self._lock = threading.Lock()
        self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = open_db(path, timeout=10.0)
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(SCHEMA)
        migrate(db, MIGRATIONS, what="credential store", path=path, first=1,
                version=_SCHEMA_SLOT, error=DavsyncError)
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        """One row, with the statement closed at once: an open SELECT would pin an old WAL
        snapshot, and this connection would miss revocations made by other processes."""
        with self._lock:
            cursor = self._db.execute(sql, args)
            try:
                row = cursor.fetchone()
            finally:
                cursor.close()
        return None if row is None else tuple(row)

    def _bump_generation(self, db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def generation(self) -> int:
        """Changes whenever a device password stops being valid; cheap enough for every request."""
        row = self._one("SELECT value FROM meta WHERE key = 'generation'")
        assert row is not None
        return int(row[0])

    def provision(
        self,
        iss: str,
        sub: str,
        device_id: str,
        device_name: str,
        *,
        email: str | None = None,
        max_devices: int = 20,
    ) -> tuple[str, Secret]:
        """Create the account if needed and give `device_id` a new password.

        Provisioning a device again replaces its password: the old one stops working at once.
        Raises Blocked if the admin blocked the account or this device.
        """
        username = derive_username(iss, sub)
        password = new_device_password()
        password_hash = self.hasher.hash(password.reveal())
        now = self.clock()
        with self._write() as db:
            self._upsert_account(db, username, iss, sub, email, now)
            blocked = db.execute(
                "SELECT 1 FROM devices WHERE username = ? AND device_id = ?"
                " AND blocked IS NOT NULL", (username, device_id),
            ).fetchall()
            if blocked:
                raise Blocked(DEVICE, username, device_id)
            _check_room(db, username, device_id, max_devices)
            replaced = db.execute(
                "UPDATE devices SET name = ?, password_hash = ?, provisioned = ?, revoked = NULL"
                " WHERE username = ? AND device_id = ?",
                (device_name, password_hash, now, username, device_id),
            ).rowcount
            if replaced:
                self._bump_generation(db)
            else:
                db.execute(
                    "INSERT INTO devices (username, device_id, name, password_hash, created,"
                    " provisioned) VALUES (?, ?, ?, ?, ?, ?)",
                    (username, device_id, device_name, password_hash, now, now),
                )
        return username, password

    def _upsert_account(self, db: sqlite3.Connection, username: str, iss: str, sub: str,
                        email: str | None, now: float) -> None:
        """Create the account or refresh its e-mail; Blocked if the admin blocked it."""
        db.execute(
            "INSERT INTO accounts (username, iss, sub, email, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (username) DO UPDATE SET email = coalesce(excluded.email, email)",
            (username, iss, sub, email, now),
        )
        if db.execute("SELECT blocked FROM accounts WHERE username = ?",
                      (username,)).fetchall()[0][0] is not None:
            raise Blocked("account", username)

    def create_local_account(self, username: str) -> bool:
        """An account without an identity (for app passwords only); False if it exists."""
        with self._write() as db:
            return bool(db.execute(
                "INSERT INTO accounts (username, iss, sub, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING", (username, LOCAL_ISSUER, username, self.clock()),
            ).rowcount)

    def add_app_password(
        self,
        username: str,
        label: str,
        *,
        identity: tuple[str, str, str | None] | None = None,
        max_devices: int | None = None,
    ) -> tuple[str, Secret]:
        """A new app password for `username`: (its id, the password, shown once).

        With `identity` (iss, sub, email) the account is created if needed (self-service);
        without, it must exist (NoAccount). Raises Blocked for a blocked account, and
        TooManyDevices when `max_devices` credentials are already active.
        """
        password = new_device_password()
        password_hash = self.hasher.hash(password.reveal())
        app_id = new_app_id()
        now = self.clock()
        with self._write() as db:
            if identity is not None:
                self._upsert_account(db, username, *identity[:2], identity[2], now)
            else:
                row = db.execute("SELECT blocked FROM accounts WHERE username = ?",
                                 (username,)).fetchall()
                if not row:
                    raise NoAccount(f"no account {username!r} (see `davsync server accounts`)")
                if row[0][0] is not None:
                    raise Blocked("account", username)
            if max_devices is not None:
                _check_room(db, username, app_id, max_devices)
            db.execute(
                "INSERT INTO devices (username, device_id, name, password_hash, created,"
                " provisioned, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, app_id, label, password_hash, now, now, APP),
            )
        return app_id, password

    def check_password(self, username: str, password: str) -> str | None:
        """The id of the active device of `username` whose password this is, else None."""
        with self._lock:
            rows = self._db.execute(
                "SELECT d.device_id, d.password_hash FROM devices d JOIN accounts a"
                " USING (username) WHERE d.username = ? AND a.blocked IS NULL"
                " AND d.revoked IS NULL AND d.password_hash IS NOT NULL"
                " ORDER BY coalesce(d.last_used, d.provisioned) DESC",
                (username,),
            ).fetchall()
        for device_id, password_hash in rows:
            try:
                self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                continue
            return str(device_id)
        return None

    def touch(self, username: str, device_id: str) -> None:
        """Record a successful login (called on cache misses only, so about once a minute)."""
        with self._write() as db:
            db.execute(
                "UPDATE devices SET last_used = ? WHERE username = ? AND device_id = ?",
                (self.clock(), username, device_id),
            )

    def revoke(self, username: str, device_id: str) -> bool:
        """Revoke one device (its hash is dropped); False if there is no such active device."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE devices SET revoked = ?, password_hash = NULL"
                " WHERE username = ? AND device_id = ? AND revoked IS NULL",
                (self.clock(), username, device_id),
            ).rowcount
            if changed:
                self._bump_generation(db)
        return bool(changed)

    def block(self, username: str, device_id: str | None = None) -> bool:
        """Revoke and block one device (or app password), or with no `device_id` the whole
        account and every credential of it; False if there is no such device or account.

        A blocked device may not be provisioned again, a blocked account gets no new device
        or app password, until `unblock`.
        """
        now = self.clock()
        revoke = "UPDATE devices SET revoked = coalesce(revoked, ?), password_hash = NULL"
        with self._write() as db:
            if device_id is None:
                found = db.execute("UPDATE accounts SET blocked = coalesce(blocked, ?)"
                                   " WHERE username = ?", (now, username)).rowcount
                db.execute(revoke + " WHERE username = ?", (now, username))
            else:
                found = db.execute("UPDATE devices SET blocked = coalesce(blocked, ?)"
                                   " WHERE username = ? AND device_id = ?",
                                   (now, username, device_id)).rowcount
                db.execute(revoke + " WHERE username = ? AND device_id = ?",
                           (now, username, device_id))
            if found:
                self._bump_generation(db)
        return bool(found)

    def unblock(self, username: str, device_id: str | None = None) -> bool:
        """Lift a block; the device (or the account's devices) may provision again.

        Credentials revoked by the block stay revoked: davsync devices re-provision on their
        next sync; app passwords need new ones. False if nothing was blocked.
        """
        with self._write() as db:
            if device_id is None:
                return bool(db.execute("UPDATE accounts SET blocked = NULL WHERE username = ?"
                                       " AND blocked IS NOT NULL", (username,)).rowcount)
            return bool(db.execute(
                "UPDATE devices SET blocked = NULL WHERE username = ? AND device_id = ?"
                " AND blocked IS NOT NULL", (username, device_id)).rowcount)

    def set_mode(self, username: str, mode: str | None) -> bool:
        """The daemon mode the account's devices are told when they provision (None: each
        device's own `[daemon] mode`); False if there is no such account."""
        with self._write() as db:
            return bool(db.execute("UPDATE accounts SET mode = ? WHERE username = ?",
                                   (mode, username)).rowcount)

    def mode_of(self, username: str) -> str | None:
        row = self._one("SELECT mode FROM accounts WHERE username = ?", (username,))
        return None if row is None or row[0] is None else str(row[0])

    def counts(self) -> tuple[int, int, int]:
        """(accounts, active devices, active app passwords), for the start-up line."""
        row = self._one(
            "SELECT (SELECT count(*) FROM accounts),"
            " (SELECT count(*) FROM devices WHERE revoked IS NULL AND kind = 'device'),"
            " (SELECT count(*) FROM devices WHERE revoked IS NULL AND kind = 'app')")
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def delete_account(self, username: str) -> bool:
        """Forget the account and all its devices; False if there was no such account."""
        with self._write() as db:
            changed = db.execute("DELETE FROM accounts WHERE username = ?", (username,)).rowcount
            db.execute("DELETE FROM devices WHERE username = ?", (username,))
            if changed:
                self._bump_generation(db)
        return bool(changed)

    def username_for(self, iss: str, sub: str) -> str | None:
        row = self._one("SELECT username FROM accounts WHERE iss = ? AND sub = ?", (iss, sub))
        return None if row is None else str(row[0])

    def has_account(self, username: str) -> bool:
        row = self._one("SELECT 1 FROM accounts WHERE username = ?", (username,))
        return row is not None

    def devices(self, username: str) -> list[Device]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, device_id, name, created, provisioned, last_used, revoked,"
                " kind, blocked FROM devices WHERE username = ? ORDER BY created, device_id",
                (username,),
            ).fetchall()
        return [Device(*row) for row in rows]

    def accounts(self) -> list[Account]:
        with self._lock:
            rows = self._db.execute(
                "SELECT a.username, a.iss, a.sub, a.email, a.created,"
                " (SELECT count(*) FROM devices d WHERE d.username = a.username"
                "  AND d.revoked IS NULL), a.blocked"
                " FROM accounts a ORDER BY a.created, a.username"
            ).fetchall()
        return [Account(*row) for row in rows]


def _check_room(db: sqlite3.Connection, username: str, device_id: str, max_devices: int) -> None:
    """TooManyDevices if the account has `max_devices` active credentials besides this one."""
    active = db.execute(
        "SELECT count(*) FROM devices WHERE username = ? AND revoked IS NULL AND device_id != ?",
        (username, device_id),
    ).fetchall()[0][0]
    if active >= max_devices:
        raise TooManyDevices(
            f"account {username} already has {active} active devices (limit {max_devices});"
            " revoke one with `davsync logout` or `davsync server revoke`"
        )
