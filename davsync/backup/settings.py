"""`[backup]` in the client config: typed, validated, with secrets resolved only on demand."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from davsync.config import Config
from davsync.errors import ConfigError
from davsync.secret import Secret
from davsync.settings import Table, run_secret_command

CATEGORIES = ("images", "videos", "documents")
SNAPSHOT_CATEGORIES = ("contacts", "calendars")
ALL_CATEGORIES = CATEGORIES + SNAPSHOT_CATEGORIES
# S3 bucket naming rules: an invalid name is the user's to fix, not a network failure.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
KEYS = (
    "endpoint", "bucket", "prefix", "region", "access_key", "secret_key", "access_key_command",
    "secret_key_command", "encryption", "passphrase", "passphrase_command", *CATEGORIES,
    "unmetered_only", "retention_days", "concurrency", "part_size_mib",
)


@dataclass(frozen=True)
class BackupConfig:
    endpoint: str | None
    bucket: str
    prefix: str
    region: str
    encryption: str
    roots: dict[str, list[Path]]
    unmetered_only: bool
    retention_days: int
    concurrency: int
    part_size: int
    state_dir: Path
    contacts_dir: Path | None
    calendars_dir: Path | None
    where: str
    _table: Table = field(repr=False)

    def passphrase(self) -> Secret:
        t = self._table
        inline = t.secret("passphrase")
        if inline is not None:
            return inline
        command = t.str("passphrase_command")
        if command is None:
            raise t.error("passphrase", "is required (or passphrase_command)")
        return run_secret_command(command, f"{self.where} passphrase_command")

    def credentials(self) -> tuple[str, Secret] | None:
        """(access key, secret key) from the config, or None for the standard AWS chain."""
        t = self._table
        access = t.str("access_key")
        if access is None and (cmd := t.str("access_key_command")) is not None:
            access = run_secret_command(cmd, f"{self.where} access_key_command").reveal()
        secret = t.secret("secret_key")
        if secret is None and (cmd := t.str("secret_key_command")) is not None:
            secret = run_secret_command(cmd, f"{self.where} secret_key_command")
        if access is None and secret is None:
            return None
        if access is None or secret is None:
            missing = "access_key" if access is None else "secret_key"
            raise t.error(missing, "is required when the other key of the pair is set")
        return access, secret


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_backup(config: Config) -> BackupConfig:
    """Read and check `[backup]`; raises ConfigError naming the key."""
    if not config.has_section("backup"):
        raise ConfigError(f"{config.path}: no [backup] section (see README, Backup)")
    t = config.section("backup")
    t.check_keys(KEYS)
    endpoint = t.str("endpoint")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise t.error("endpoint", f"must start with https:// (or http://), not {endpoint!r}")
    encryption = t.choice("encryption", ("client", "sse-c"), "client")
    if encryption == "sse-c" and endpoint is not None and endpoint.startswith("http://") \
            and not is_loopback_url(endpoint):
        raise t.error("encryption", "\"sse-c\" sends the key with every request: it needs an "
                      "https:// endpoint (plain http:// is allowed only for loopback)")
    for pair in (("passphrase", "passphrase_command"), ("access_key", "access_key_command"),
                 ("secret_key", "secret_key_command")):
        if t.str(pair[0]) is not None and t.str(pair[1]) is not None:
            raise t.error(pair[0], f"give either {pair[0]} or {pair[1]}, not both")
    if t.str("passphrase") is None and t.str("passphrase_command") is None:
        raise t.error("passphrase_command", "is required (or passphrase)")
    bucket = t.req_str("bucket")
    if len(bucket) < 3:
        raise t.error("bucket", "must have at least 3 characters")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket):
        raise t.error("bucket", f"{bucket!r} is not a valid S3 bucket name: use 3 to 63 "
                      "lower-case letters, digits, dots and hyphens, starting and ending with a "
                      "letter or digit")
    prefix = (t.str("prefix", "") or "").strip("/")
    return BackupConfig(
        endpoint=endpoint, bucket=bucket, prefix=prefix,
        region=t.str("region", "us-east-1") or "us-east-1", encryption=encryption,
        roots={c: t.paths(c) for c in CATEGORIES},
        unmetered_only=t.bool("unmetered_only", False),
        retention_days=t.int("retention_days", 30, minimum=1, maximum=36500),
        concurrency=t.int("concurrency", 4, minimum=1, maximum=64),
        part_size=t.int("part_size_mib", 8, minimum=5, maximum=512) << 20,
        state_dir=config.state_dir, contacts_dir=config.device.contacts,
        calendars_dir=config.device.calendars, where=t.where, _table=t,
    )
