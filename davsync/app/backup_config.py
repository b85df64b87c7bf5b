"""`[backup]` turned into the backup room's values (`BackupConfig`): the rules a backup needs
beyond the schema (keys that go together or exclude each other, a valid bucket name, https for
SSE-C), paths resolved against the config file's folder, and secrets resolved only on demand.

It lives in the composition root because it reads the configuration; the backup room takes
the values it builds and never sees `Config`.
"""

from __future__ import annotations

import re
from pathlib import Path

from davsync.backup.settings import CATEGORIES, BackupConfig, EncryptionMode, is_loopback_url
from davsync.config import BackupTable, Config
from davsync.config.decode import key_error, resolve_path
from davsync.errors import ConfigError
from davsync.secret import Secret
from davsync.secret_command import run_secret_command

# S3 bucket naming rules: an invalid name is the user's to fix, not a network failure.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
_EITHER = (("passphrase", "passphrase_command"), ("access_key", "access_key_command"),
           ("secret_key", "secret_key_command"))


def parse_backup(config: Config) -> BackupConfig:
    """Check `[backup]` for a backup or restore; raises ConfigError naming the key."""
    t = config.backup
    if t is None:
        raise ConfigError(f"{config.path}: no [backup] section (see README, Backup)")
    where = config.where("backup")
    _check_rules(t, where)
    bucket = _checked_bucket(t.bucket, where)
    folder = config.path.parent
    return BackupConfig(
        endpoint=t.endpoint, bucket=bucket, prefix=(t.prefix or "").strip("/"), region=t.region,
        encryption=t.encryption,
        roots={c: _paths(getattr(t, c), folder) for c in CATEGORIES},
        unmetered_only=t.unmetered_only, retention_days=t.retention_days,
        concurrency=t.concurrency, part_size=t.part_size_mib << 20,
        state_dir=config.state_dir, contacts_dir=config.device.contacts,
        calendars_dir=config.device.calendars, where=where,
        passphrase_source=lambda: _passphrase(t, where),
        credentials_source=lambda: _credentials(t, where),
    )


def _passphrase(t: BackupTable, where: str) -> Secret:
    if t.passphrase is not None:
        return t.passphrase
    if t.passphrase_command is None:
        raise key_error(where, "passphrase", "is required (or passphrase_command)")
    return run_secret_command(t.passphrase_command, f"{where} passphrase_command")


def _credentials(t: BackupTable, where: str) -> tuple[str, Secret] | None:
    """(access key, secret key) from the config, or None for the standard AWS chain."""
    access = t.access_key
    if access is None and t.access_key_command is not None:
        access = run_secret_command(t.access_key_command, f"{where} access_key_command").reveal()
    secret = t.secret_key
    if secret is None and t.secret_key_command is not None:
        secret = run_secret_command(t.secret_key_command, f"{where} secret_key_command")
    if access is None and secret is None:
        return None
    if access is None or secret is None:
        missing = "access_key" if access is None else "secret_key"
        raise key_error(where, missing, "is required when the other key of the pair is set")
    return access, secret


def _check_rules(t: BackupTable, where: str) -> None:
    """What a backup needs beyond each key's own type: keys that go together or exclude each
    other, and an https:// endpoint for a key sent with every request."""
    endpoint = t.endpoint
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise key_error(where, "endpoint",
                        f"must start with https:// (or http://), not {endpoint!r}")
    if t.encryption == EncryptionMode.SSE_C and endpoint is not None \
            and endpoint.startswith("http://") and not is_loopback_url(endpoint):
        raise key_error(where, "encryption", "\"sse-c\" sends the key with every request: it "
                        "needs an https:// endpoint (plain http:// is allowed only for loopback)")
    for key, command in _EITHER:
        if getattr(t, key) is not None and getattr(t, command) is not None:
            raise key_error(where, key, f"give either {key} or {command}, not both")
    if t.passphrase is None and t.passphrase_command is None:
        raise key_error(where, "passphrase_command", "is required (or passphrase)")


def _checked_bucket(bucket: str | None, where: str) -> str:
    if bucket is None:
        raise key_error(where, "bucket", "is required")
    if len(bucket) < 3:
        raise key_error(where, "bucket", "must have at least 3 characters")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket):
        raise key_error(where, "bucket", f"{bucket!r} is not a valid S3 bucket name: use 3 to 63 "
                        "lower-case letters, digits, dots and hyphens, starting and ending with "
                        "a letter or digit")
    return bucket


def _paths(value: list[str] | str, base_dir: Path) -> list[Path]:
    """A category's folders: one path or a list of them."""
    return [resolve_path(item, base_dir) for item in ([value] if isinstance(value, str) else value)]
