"""Typed reading of TOML tables, with errors that name the file, the key and what is wrong.

Every config section (client `[server]`, `[device]`, `[backup]`, the self-hosted server's own
file) is read through `Table`, so every config error looks the same and exits with code 2.
"""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from davsync.errors import ConfigError
from davsync.secret import Secret

T = TypeVar("T")
_Str = str  # `Table.str` shadows the builtin inside the class body


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a ConfigError naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (see config/davsync.example.toml)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


class Table:
    """One TOML table; `where` is how errors name it, e.g. "config.toml [server]"."""

    def __init__(self, data: Mapping[str, Any], where: str, base_dir: Path | None = None) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a table")
        self.data = data
        self.where = where
        self.base_dir = base_dir

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where} {key}: {problem}")

    def check_keys(self, allowed: Iterable[str]) -> None:
        """Refuse unknown keys: a typo must not silently fall back to a default."""
        allowed = list(allowed)
        for key in self.data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                known = ", ".join(allowed)
                extra = f" (did you mean {hint[0]!r}?)" if hint else f"; known keys: {known}"
                raise self.error(key, f"unknown key{extra}")

    def _get(self, key: str, kind: type[T] | tuple[type, ...], kind_name: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and kind is not bool:
            raise self.error(key, f"must be {kind_name}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"must be {kind_name}, not {type(value).__name__} {value!r}")
        return value

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(key, str, "a string")
        if value is None and required:
            raise self.error(key, "is required")
        if value is not None and not value.strip():
            raise self.error(key, "must not be empty")
        return value if value is not None else default

    def req_str(self, key: _Str) -> _Str:
        value = self.str(key, required=True)
        assert value is not None
        return value

    def bool(self, key: _Str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def int(self, key: _Str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._get(key, int, "an integer")
        if value is None:
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.error(key, f"must be {bound}, not {value}")
        return int(value)

    def float(self, key: _Str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(key, (int, float), "a number")
        if value is None:
            return default
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, not {value}")
        return float(value)

    def choice(self, key: _Str, choices: Iterable[_Str], default: _Str) -> _Str:
        options = list(choices)
        value = self.str(key, default)
        assert value is not None
        if value not in options:
            listed = ", ".join(repr(c) for c in options)
            raise self.error(key, f"must be one of {listed}, not {value!r}")
        return value

    def path(self, key: _Str, default: Path | None = None) -> Path | None:
        value = self.str(key)
        if value is None:
            return default
        path = Path(os.path.expandvars(value)).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def paths(self, key: _Str) -> list[Path]:
        value = self.data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of paths")
        out = []
        for item in value:
            path = Path(os.path.expandvars(item)).expanduser()
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            out.append(path)
        return out

    def secret(self, key: _Str) -> Secret | None:
        value = self.str(key)
        return None if value is None else Secret(value)

    def table(self, key: _Str) -> Table:
        value = self.data.get(key, {})
        return Table(value, f"{self.where} [{key}]" if self.where else f"[{key}]", self.base_dir)


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
