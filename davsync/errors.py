"""Errors every layer may raise, and the process exit codes they map to.

Exit codes are part of the command-line contract (README "Exit codes"):
0 all done, 1 some items failed, 2 configuration or usage error,
3 server unreachable or credentials refused, 4 wrong backup passphrase.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_WRONG_PASSPHRASE = 4


class DavsyncError(Exception):
    """Base of every error davsync reports to a user; `exit_code` says how the CLI exits."""

    exit_code = EXIT_ITEMS_FAILED


class ConfigError(DavsyncError):
    """A configuration key is missing or wrong; the message names the key and the file."""

    exit_code = EXIT_CONFIG


class UnreachableError(DavsyncError):
    """A server could not be reached, or answered in a way that stops the whole run."""

    exit_code = EXIT_UNREACHABLE


class AuthError(UnreachableError):
    """The server refused our credentials (and re-provisioning, if any, did not help)."""


class ServerSettingError(ConfigError):
    """A `[server]` setting that the server's answers show to be wrong (a URL that is no DAV
    server, a collection name the account does not have). The DAV layer does not know the
    config file's name: the message starts at "[server] <key>:" and the caller prefixes it."""
