"""Secrets from a user's command (`password_command`, `passphrase_command`, ...): run only when
the secret is needed, never echoed."""

from __future__ import annotations

import shlex
import subprocess

from davsync.errors import ConfigError
from davsync.secret import Secret


def run_secret_command(command: str, what: str) -> Secret:
    """Run a user's `*_command` and return the first line of its stdout as a Secret.

    The command's own output is never echoed into the error: it might be the secret.
    """
    try:
        proc = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise ConfigError(f"{what}: command not found: {shlex.split(command)[0]!r}") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what}: command did not finish within 60 s") from None
    except ValueError as exc:
        raise ConfigError(f"{what}: cannot parse the command line: {exc}") from None
    if proc.returncode != 0:
        raise ConfigError(f"{what}: command exited with status {proc.returncode}")
    line = proc.stdout.split("\n", 1)[0].rstrip("\r")
    if not line:
        raise ConfigError(f"{what}: command printed nothing on its first line")
    return Secret(line)
