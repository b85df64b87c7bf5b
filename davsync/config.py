"""The client's configuration: where it is found, and the typed `[server]`, `[device]`, `[state]`.

Lookup order: `--config PATH`, else `$DAVSYNC_CONFIG`, else
`$XDG_CONFIG_HOME/davsync/config.toml`. Sections owned by other rooms (`[backup]`) are
kept raw here and parsed by their owner, so one broken section does not block another command.

`[server] url` never keeps a user name or password: user info in it becomes the credentials (when
`username` / `password` are not set) and is removed, so it cannot reach the state database, a
log line or `status` output.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from davsync.dav.api import DEFAULT_REQUEST_TIMEOUT
from davsync.dav.hrefs import without_userinfo
from davsync.errors import ConfigError
from davsync.secret import Secret
from davsync.settings import Table, load_toml, run_secret_command

CONFLICT_POLICIES = ("keep-both", "device-wins", "server-wins")
AUTH_MODES = ("basic", "provision")
TOP_LEVEL = ("server", "device", "state", "backup", "daemon", "log")
# Keys whose value is a secret: a config file holding one must not be readable by others.
SECRET_KEYS = {"server": ("password",), "backup": ("passphrase", "secret_key")}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """`[server]`: which DAV account, how to authenticate, and how hard to push it."""

    url: str | None
    username: str | None
    password: Secret | None
    password_command: str | None
    addressbook: str = "contacts"
    calendar: str = "personal"
    create: bool = False
    verify_tls: bool = True
    conflict: str = "keep-both"
    auth: str = "basic"
    provision_url: str | None = None
    assertion_command: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    device_name: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    multiget_batch: int = 50
    concurrency: int = 4
    max_retries: int = 4

    def resolve_password(self) -> Secret:
        """The basic-auth password: inline, or the first line of `password_command`."""
        if self.password is not None:
            return self.password
        if self.password_command is not None:
            return run_secret_command(self.password_command, "[server] password_command")
        return Secret("")


@dataclass(frozen=True)
class DeviceConfig:
    """`[device]`: the local stores davsync keeps in step with the server."""

    contacts: Path | None
    calendars: Path | None
    where: str = "[device]"

    def folders(self) -> list[tuple[str, Path]]:
        """(key, folder) of each configured store; a config error when there is none, or when
        one names something that is not a folder (a file would otherwise fail deep inside the
        run with a traceback)."""
        found = [(k, p) for k, p in (("contacts", self.contacts), ("calendars", self.calendars))
                 if p is not None]
        if not found:
            raise ConfigError(f"{self.where}: nothing to sync: set contacts and/or calendars "
                              "(folders of .vcf / .ics files)")
        for key, folder in found:
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"{self.where} {key}: {folder} is not a folder")
        return found


@dataclass(frozen=True)
class Config:
    path: Path
    server_config: ServerConfig | None
    device: DeviceConfig
    state_dir: Path
    raw: dict[str, Any] = field(repr=False)

    @property
    def server(self) -> ServerConfig:
        """`[server]`, which only the commands that talk to the DAV server need: a config with
        only `[backup]` serves `backup`, `restore` and `status`."""
        if self.server_config is None:
            raise ConfigError(f"{self.path}: no [server] section: this command needs the DAV "
                              "server's url and username (see config/davsync.example.toml)")
        return self.server_config

    def has_server(self) -> bool:
        return self.server_config is not None

    def section(self, name: str) -> Table:
        """A raw section for the room that owns it (e.g. `[backup]`)."""
        return Table(self.raw.get(name, {}), f"{self.path} [{name}]", self.path.parent)

    def has_section(self, name: str) -> bool:
        return name in self.raw


def default_config_path() -> Path:
    env = os.environ.get("DAVSYNC_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "davsync" / "config.toml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "davsync"


def load_config(path: Path | None = None) -> Config:
    """Load and validate the client config; raises ConfigError naming the key."""
    path = path or default_config_path()
    raw = load_toml(path)
    root = Table(raw, str(path), path.parent)
    root.check_keys(TOP_LEVEL)
    server = None
    if "server" in raw:
        server = _server(Table(raw["server"], f"{path} [server]", path.parent))
    dev = Table(raw.get("device", {}), f"{path} [device]", path.parent)
    dev.check_keys(["contacts", "calendars"])
    device = DeviceConfig(
        contacts=dev.path("contacts"), calendars=dev.path("calendars"), where=dev.where
    )
    state = Table(raw.get("state", {}), f"{path} [state]", path.parent)
    state.check_keys(["dir"])
    state_dir = state.path("dir") or default_state_dir()
    _warn_if_others_can_read(path, raw)
    return Config(path=path, server_config=server, device=device, state_dir=state_dir, raw=raw)


def _warn_if_others_can_read(path: Path, raw: dict[str, Any]) -> None:
    """A password in a file others can read is one `cat` away from them. Credential files are
    refused outright; a config file only gets a warning, as it may be shared on purpose."""
    held = [f"[{section}] {key}" for section, keys in SECRET_KEYS.items()
            for key in keys if isinstance(raw.get(section), dict) and key in raw[section]]
    if not held:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds %s and other users can read it: run `chmod 600 %s`",
                    path, " and ".join(held), path)


def _server(t: Table) -> ServerConfig:
    t.check_keys(
        [
            "url", "username", "password", "password_command", "addressbook", "calendar",
            "create", "verify_tls", "conflict", "auth", "provision_url", "assertion_command",
            "issuer", "client_id", "device_name", "connect_timeout", "read_timeout",
            "request_timeout",
            "multiget_batch", "concurrency", "max_retries",
        ]
    )
    auth = t.choice("auth", AUTH_MODES, "basic")
    raw_url = t.str("url")
    url = None if raw_url is None else without_userinfo(raw_url)
    if url is not None and not url.startswith(("http://", "https://")):
        raise t.error("url", f"must start with http:// or https://, not {url!r}")
    username, password = _url_credentials(t, auth, raw_url)
    if auth == "basic":
        if url is None:
            raise t.error("url", "is required (or set auth = \"provision\")")
        if username is None:
            raise t.error("username", "is required with auth = \"basic\"")
        if t.str("password") is not None and t.str("password_command") is not None:
            raise t.error("password", "give either password or password_command, not both")
    else:
        if t.str("provision_url") is None:
            raise t.error("provision_url", "is required with auth = \"provision\"")
        no_grant = t.str("issuer") is None or t.str("client_id") is None
        if t.str("assertion_command") is None and no_grant:
            raise t.error(
                "assertion_command",
                "auth = \"provision\" needs assertion_command, or issuer and client_id "
                "for `davsync login`",
            )
    return ServerConfig(
        url=url,
        username=username,
        password=password,
        password_command=t.str("password_command"),
        addressbook=t.str("addressbook", "contacts") or "contacts",
        calendar=t.str("calendar", "personal") or "personal",
        create=t.bool("create", False),
        verify_tls=t.bool("verify_tls", True),
        conflict=t.choice("conflict", CONFLICT_POLICIES, "keep-both"),
        auth=auth,
        provision_url=t.str("provision_url"),
        assertion_command=t.str("assertion_command"),
        issuer=t.str("issuer"),
        client_id=t.str("client_id"),
        device_name=t.str("device_name"),
        connect_timeout=t.float("connect_timeout", 10.0, minimum=0.1),
        read_timeout=t.float("read_timeout", 60.0, minimum=0.1),
        request_timeout=t.float("request_timeout", DEFAULT_REQUEST_TIMEOUT, minimum=1.0),
        multiget_batch=t.int("multiget_batch", 50, minimum=1, maximum=1000),
        concurrency=t.int("concurrency", 4, minimum=1, maximum=32),
        max_retries=t.int("max_retries", 4, minimum=0, maximum=20),
    )


def _url_credentials(t: Table, auth: str, url: str | None) -> tuple[str | None, Secret | None]:
    """`username` and `password`, or the user info of `url` when neither is set. User info
    next to configured credentials, or with provisioned ones, is refused: which would win?"""
    username, password = t.str("username"), t.secret("password")
    parts = urlsplit(url or "")
    if parts.username is None and parts.password is None:
        return username, password
    if auth != "basic":
        raise t.error("url", 'must not hold a user name or password with auth = "provision"')
    if username is not None or password is not None or t.str("password_command") is not None:
        raise t.error(
            "url",
            "holds a user name or password, and username/password are set too: give them "
            "once (the url's are used when username and password are not set)",
        )
    secret = None if parts.password is None else Secret(unquote(parts.password))
    return unquote(parts.username or "") or None, secret
