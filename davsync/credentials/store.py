"""Where this installation keeps its secrets: the OS keyring, or a 0600 JSON file.

Backends move opaque records (small `str -> str` mappings) in named slots, like restic's
backends move opaque bytes; the typed layer on top (`DeviceCredentials`, the cached ID token)
decides what a record means. Which backend: `DAVSYNC_KEYRING=0` forces the file,
`DAVSYNC_KEYRING=1` insists on the keyring, unset uses the keyring when a real one is usable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from davsync.errors import ConfigError
from davsync.fsutil import write_atomic
from davsync.secret import Secret

log = logging.getLogger(__name__)

DEVICE_SLOT: Final = "device"
ID_TOKEN_SLOT: Final = "id_token"  # noqa: S105 - a slot name, not a secret
CREDENTIALS_FILE: Final = "credentials.json"
KEYRING_SERVICE: Final = "davsync"
KEYRING_ENV: Final = "DAVSYNC_KEYRING"


class CredentialStoreError(ConfigError):
    """The credential store cannot be used as it is; the message says which file and what to run."""


class SecretStore(Protocol):
    """A place for small secret records, one per slot.

    Contract: `get` returns exactly the mapping last given to `set` for that slot, or None when
    the slot is empty; `set` replaces the whole record (never merges); `delete` empties the slot
    and is a no-op when it is already empty. Slots are independent. Values are never logged.
    `describe()` says where the records live, for messages (never a secret).
    """

    def get(self, slot: str) -> dict[str, str] | None: ...

    def set(self, slot: str, record: Mapping[str, str]) -> None: ...

    def delete(self, slot: str) -> None: ...

    def describe(self) -> str: ...


# --- the typed records -------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCredentials:
    """What provisioning gave this device: its DAV account and where to use it."""

    username: str
    password: Secret
    dav_url: str
    device_id: str
    server: str  # the provision_url that issued them
    mode: str | None = None  # the daemon mode the server set for this account, if any

    def to_record(self) -> dict[str, str]:
        record = {
            "username": self.username,
            "password": self.password.reveal(),
            "dav_url": self.dav_url,
            "device_id": self.device_id,
            "server": self.server,
        }
        if self.mode is not None:
            record["mode"] = self.mode
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, str]) -> DeviceCredentials | None:
        """None when the record is incomplete (an older or damaged entry: provision again)."""
        keys = ("username", "password", "dav_url", "device_id", "server")
        if not all(isinstance(record.get(k), str) and record.get(k) for k in keys):
            return None
        return cls(
            username=record["username"],
            password=Secret(record["password"]),
            dav_url=record["dav_url"],
            device_id=record["device_id"],
            server=record["server"],
            mode=record.get("mode") or None,
        )


def load_device(store: SecretStore) -> DeviceCredentials | None:
    record = store.get(DEVICE_SLOT)
    return None if record is None else DeviceCredentials.from_record(record)


def save_device(store: SecretStore, creds: DeviceCredentials) -> None:
    store.set(DEVICE_SLOT, creds.to_record())


def load_id_token(store: SecretStore) -> Secret | None:
    record = store.get(ID_TOKEN_SLOT)
    token = None if record is None else record.get("id_token")
    return Secret(token) if token else None


def save_id_token(store: SecretStore, token: Secret, issuer: str) -> None:
    store.set(ID_TOKEN_SLOT, {"id_token": token.reveal(), "issuer": issuer})


# --- the file backend ----------------------------------------------------------------------


def ensure_private_dir(path: Path) -> None:
    """Create the state directory as 0700; an existing directory is left as the user made it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, the file being 0600 from its first byte."""
    ensure_private_dir(path.parent)
    write_atomic(path, data, mode=0o600)


def check_private(path: Path, st: os.stat_result) -> None:
    """Refuse a credential file others may have read: its secrets must be treated as leaked."""
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise CredentialStoreError(
            f"{path}: credential file is readable or writable by group/others (mode {mode:04o}); "
            f"run `chmod 600 {path}` (and consider `davsync logout` + `davsync login` if "
            "someone else may have read it)"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CredentialStoreError(
            f"{path}: credential file belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
            f"run `chown {os.getuid()} {path}` or remove it and run `davsync login`"
        )


class FileSecretStore:
    """All slots in one JSON file (`credentials.json` in the state directory), mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"file {self.path}"

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialStoreError(f"{self.path}: cannot read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            check_private(self.path, os.fstat(fh.fileno()))
            raw = fh.read()
        return self._parse(raw)

    def _parse(self, raw: bytes) -> dict[str, dict[str, str]]:
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = None
        slots = data.get("slots") if isinstance(data, dict) else None
        if not isinstance(slots, dict) or not all(
            isinstance(r, dict) and all(isinstance(v, str) for v in r.values())
            for r in slots.values()
        ):
            # No detail from the parser: it could quote a piece of a secret.
            raise CredentialStoreError(
                f"{self.path}: credential file is damaged; remove it and run `davsync login`"
            )
        return slots

    def _write(self, slots: Mapping[str, Mapping[str, str]]) -> None:
        body = json.dumps({"version": 1, "slots": slots}, indent=1, sort_keys=True)
        try:
            write_private_file(self.path, body.encode("utf-8") + b"\n")
        except OSError as exc:
            raise CredentialStoreError(f"{self.path}: cannot write: {exc.strerror}") from None

    def get(self, slot: str) -> dict[str, str] | None:
        record = self._read().get(slot)
        return dict(record) if record is not None else None

    def set(self, slot: str, record: Mapping[str, str]) -> None:
        with self._locked():
            slots = self._read()
            slots[slot] = dict(record)
            self._write(slots)

    def delete(self, slot: str) -> None:
        with self._locked():
            slots = self._read()
            if slots.pop(slot, None) is None:
                return
            if slots:
                self._write(slots)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between the daemon and a CLI command on one machine."""
        ensure_private_dir(self.path.parent)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# --- the keyring backend -------------------------------------------------------------------


class KeyringSecretStore:
    """One keyring entry per slot: service "davsync", user "<slot>@<state dir>".

    The state directory in the entry name keeps two installations of one user (two configs)
    apart, exactly as their device ids are kept apart.
    """

    def __init__(self, backend: Any, namespace: str) -> None:
        self.backend = backend
        self.namespace = namespace

    def describe(self) -> str:
        return f"keyring {type(self.backend).__module__} (service {KEYRING_SERVICE!r})"

    def _user(self, slot: str) -> str:
        return f"{slot}@{self.namespace}"

    def _call(self, what: str, fn: Any, *args: str) -> Any:
        import keyring.errors

        try:
            return fn(KEYRING_SERVICE, *args)
        except keyring.errors.KeyringError as exc:
            raise CredentialStoreError(
                f"keyring {type(self.backend).__module__}: cannot {what} ({type(exc).__name__}); "
                f"unlock the keyring, or set {KEYRING_ENV}=0 to keep credentials in a 0600 file"
            ) from None

    def get(self, slot: str) -> dict[str, str] | None:
        value = self._call("read", self.backend.get_password, self._user(slot))
        if value is None:
            return None
        try:
            record = json.loads(value)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
            log.warning("keyring entry %s is damaged; ignoring it", self._user(slot))
            return None
        return record

    def set(self, slot: str, record: Mapping[str, str]) -> None:
        self._call("store", self.backend.set_password, self._user(slot), json.dumps(dict(record)))

    def delete(self, slot: str) -> None:
        import keyring.errors

        try:
            self.backend.delete_password(KEYRING_SERVICE, self._user(slot))
        except keyring.errors.PasswordDeleteError:
            return  # already empty: the contract says no-op
        except keyring.errors.KeyringError as exc:
            raise CredentialStoreError(
                f"keyring {type(self.backend).__module__}: cannot delete ({type(exc).__name__}); "
                f"unlock the keyring, or set {KEYRING_ENV}=0 to use a 0600 file"
            ) from None


def usable_keyring() -> Any | None:
    """The configured keyring backend, or None when it would not really store anything."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    return backend


def choose_backend(env_value: str | None, keyring_available: bool) -> str:
    """ "file" or "keyring" from `$DAVSYNC_KEYRING` and whether a real keyring is there."""
    value = (env_value or "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "file"
    if value in ("1", "true", "yes", "on"):
        if not keyring_available:
            raise CredentialStoreError(
                f"{KEYRING_ENV}={env_value} asks for the OS keyring, but no usable keyring backend "
                "was found (is the Secret Service running and unlocked?); unset it to use a "
                "0600 file in the state directory"
            )
        return "keyring"
    if value:
        raise CredentialStoreError(
            f"{KEYRING_ENV}={env_value!r}: must be 0 (file) or 1 (keyring), or unset (automatic)"
        )
    return "keyring" if keyring_available else "file"


def open_secret_store(state_dir: Path, env: Mapping[str, str] | None = None) -> SecretStore:
    """The store this installation uses, chosen as the module docstring says."""
    env = os.environ if env is None else env
    wanted = env.get(KEYRING_ENV)
    backend = (
        None
        if (wanted or "").strip().lower() in ("0", "false", "no", "off")
        else (usable_keyring())
    )
    if choose_backend(wanted, backend is not None) == "keyring":
        return KeyringSecretStore(backend, str(state_dir.resolve()))
    return FileSecretStore(state_dir / CREDENTIALS_FILE)
