"""The credential store: accounts keyed by (iss, sub), their devices' and app passwords' hashes,
and the admin's blocks.

The file (SQLite in WAL mode, mode 0600, shared by the running server and the admin commands:
`davsync server revoke` in another process takes effect on the server's next request), its
schema and its lock are `credential_db.py`'s. Only slow salted hashes (argon2id) of
passwords are stored, never the passwords. Every revocation bumps `generation`, which login
caches compare on each request.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from davsync.errors import DavsyncError
from davsync.secret import Secret
from davsync.server.credential_db import CredentialDB, bump_generation

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
    """Accounts, their credentials and the admin's blocks, over the credential database
    (`credential_db.CredentialDB`: the file, its schema, the lock).

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
        self._db = CredentialDB(path)

    def close(self) -> None:
        self._db.close()

    def generation(self) -> int:
        """Changes whenever a device password stops being valid; cheap enough for every request."""
        return self._db.generation()

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
        with self._db.write() as db:
            _upsert_account(db, username, iss, sub, email, now)
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
                bump_generation(db)
            else:
                db.execute(
                    "INSERT INTO devices (username, device_id, name, password_hash, created,"
                    " provisioned) VALUES (?, ?, ?, ?, ?, ?)",
                    (username, device_id, device_name, password_hash, now, now),
                )
        return username, password

    def create_local_account(self, username: str) -> bool:
        """An account without an identity (for app passwords only); False if it exists."""
        with self._db.write() as db:
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
        with self._db.write() as db:
            if identity is not None:
                _upsert_account(db, username, *identity[:2], identity[2], now)
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
        rows = self._db.all(
            "SELECT d.device_id, d.password_hash FROM devices d JOIN accounts a"
            " USING (username) WHERE d.username = ? AND a.blocked IS NULL"
            " AND d.revoked IS NULL AND d.password_hash IS NOT NULL"
            " ORDER BY coalesce(d.last_used, d.provisioned) DESC",
            (username,),
        )
        for device_id, password_hash in rows:
            try:
                self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                continue
            return str(device_id)
        return None

    def touch(self, username: str, device_id: str) -> None:
        """Record a successful login (called on cache misses only, so about once a minute)."""
        with self._db.write() as db:
            db.execute(
                "UPDATE devices SET last_used = ? WHERE username = ? AND device_id = ?",
                (self.clock(), username, device_id),
            )

    def revoke(self, username: str, device_id: str) -> bool:
        """Revoke one device (its hash is dropped); False if there is no such active device."""
        with self._db.write() as db:
            changed = db.execute(
                "UPDATE devices SET revoked = ?, password_hash = NULL"
                " WHERE username = ? AND device_id = ? AND revoked IS NULL",
                (self.clock(), username, device_id),
            ).rowcount
            if changed:
                bump_generation(db)
        return bool(changed)

    def block(self, username: str, device_id: str | None = None) -> bool:
        """Revoke and block one device (or app password), or with no `device_id` the whole
        account and every credential of it; False if there is no such device or account.

        A blocked device may not be provisioned again, a blocked account gets no new device
        or app password, until `unblock`.
        """
        now = self.clock()
        revoke = "UPDATE devices SET revoked = coalesce(revoked, ?), password_hash = NULL"
        with self._db.write() as db:
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
                bump_generation(db)
        return bool(found)

    def unblock(self, username: str, device_id: str | None = None) -> bool:
        """Lift a block; the device (or the account's devices) may provision again.

        Credentials revoked by the block stay revoked: davsync devices re-provision on their
        next sync; app passwords need new ones. False if nothing was blocked.
        """
        with self._db.write() as db:
            if device_id is None:
                return bool(db.execute("UPDATE accounts SET blocked = NULL WHERE username = ?"
                                       " AND blocked IS NOT NULL", (username,)).rowcount)
            return bool(db.execute(
                "UPDATE devices SET blocked = NULL WHERE username = ? AND device_id = ?"
                " AND blocked IS NOT NULL", (username, device_id)).rowcount)

    def set_mode(self, username: str, mode: str | None) -> bool:
        """The daemon mode the account's devices are told when they provision (None: each
        device's own `[daemon] mode`); False if there is no such account."""
        with self._db.write() as db:
            return bool(db.execute("UPDATE accounts SET mode = ? WHERE username = ?",
                                   (mode, username)).rowcount)

    def mode_of(self, username: str) -> str | None:
        row = self._db.one("SELECT mode FROM accounts WHERE username = ?", (username,))
        return None if row is None or row[0] is None else str(row[0])

    def counts(self) -> tuple[int, int, int]:
        """(accounts, active devices, active app passwords), for the start-up line."""
        row = self._db.one(
            "SELECT (SELECT count(*) FROM accounts),"
            " (SELECT count(*) FROM devices WHERE revoked IS NULL AND kind = 'device'),"
            " (SELECT count(*) FROM devices WHERE revoked IS NULL AND kind = 'app')")
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def delete_account(self, username: str) -> bool:
        """Forget the account and all its devices; False if there was no such account."""
        with self._db.write() as db:
            changed = db.execute("DELETE FROM accounts WHERE username = ?", (username,)).rowcount
            db.execute("DELETE FROM devices WHERE username = ?", (username,))
            if changed:
                bump_generation(db)
        return bool(changed)

    def username_for(self, iss: str, sub: str) -> str | None:
        row = self._db.one("SELECT username FROM accounts WHERE iss = ? AND sub = ?", (iss, sub))
        return None if row is None else str(row[0])

    def has_account(self, username: str) -> bool:
        row = self._db.one("SELECT 1 FROM accounts WHERE username = ?", (username,))
        return row is not None

    def devices(self, username: str) -> list[Device]:
        rows = self._db.all(
            "SELECT username, device_id, name, created, provisioned, last_used, revoked,"
            " kind, blocked FROM devices WHERE username = ? ORDER BY created, device_id",
            (username,),
        )
        return [Device(*row) for row in rows]

    def accounts(self) -> list[Account]:
        rows = self._db.all(
            "SELECT a.username, a.iss, a.sub, a.email, a.created,"
            " (SELECT count(*) FROM devices d WHERE d.username = a.username"
            "  AND d.revoked IS NULL), a.blocked"
            " FROM accounts a ORDER BY a.created, a.username"
        )
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


def _upsert_account(db: sqlite3.Connection, username: str, iss: str, sub: str,
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
