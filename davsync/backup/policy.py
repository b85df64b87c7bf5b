"""The passphrase policy, checked before anything touches the network or derives a key."""

from __future__ import annotations

from davsync.errors import ConfigError
from davsync.secret import Secret

MIN_LENGTH = 8


def passphrase_problems(passphrase: Secret) -> list[str]:
    """What the passphrase lacks, in words a user can act on; empty when it passes."""
    value = passphrase.reveal()
    missing = []
    if len(value) < MIN_LENGTH:
        missing.append(f"at least {MIN_LENGTH} characters")
    if not any(c.isdigit() for c in value):
        missing.append("a digit")
    if all(c.isalnum() for c in value):
        missing.append("a special character")
    if not any(c.isupper() for c in value):
        missing.append("an upper-case letter")
    if not any(c.islower() for c in value):
        missing.append("a lower-case letter")
    return missing


def check_passphrase(passphrase: Secret, where: str) -> None:
    """Raise a ConfigError naming what is missing (never the passphrase itself)."""
    missing = passphrase_problems(passphrase)
    if missing:
        raise ConfigError(f"{where}: the backup passphrase needs {', '.join(missing)}")
