"""The client's configuration: where it is found, how it is checked, and what commands get.

Lookup order: `--config PATH`, else `$DAVSYNC_CONFIG`, else
`$XDG_CONFIG_HOME/davsync/config.toml`. Every table is checked against `davsync.config.schema`
when the file is loaded, so a typo anywhere stops every command with exit code 2; which tables a
command needs (`[server]`, `[device]`, `[backup]`) is checked when it asks for them.

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
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from msgspec.structs import replace

from davsync.config.decode import EXAMPLE_HINT, decode, key_error, load_toml, resolve_path
from davsync.config.schema import (
    AuthMode,
    BackupTable,
    CalendarsStore,
    ConfigFile,
    ContactsStore,
    DaemonConfig,
    LogConfig,
    ServerConfig,
)
from davsync.dav.hrefs import without_userinfo
from davsync.errors import ConfigError
from davsync.secret import Secret
from davsync.sources.registry import STORES

# `collections = "all"`, or the names of the collections to sync.
CollectionChoice = Literal["all"] | tuple[str, ...]

# Keys whose value is a secret: a config file holding one must not be readable by others.
SECRET_KEYS = {"server": ("password",), "backup": ("passphrase", "secret_key")}

log = logging.getLogger("davsync.config")


@dataclass(frozen=True)
class DeviceConfig:
    """`[device]`: the local stores davsync keeps in step with the server."""

    contacts: Path | None
    calendars: Path | None
    where: str = "[device]"
    contacts_type: str = "vdir"  # a type of `davsync.sources.registry.STORES`
    calendars_type: str = "vdir"
    # `collections = ...`: "all", or the names; the path is then the parent of their folders
    contacts_collections: CollectionChoice | None = None
    calendars_collections: CollectionChoice | None = None

    def store_type(self, kind: str) -> str:
        return self.contacts_type if kind == "contacts" else self.calendars_type

    def collections(self, kind: str) -> CollectionChoice | None:
        """What `collections` says for `kind`: None for today's one collection per kind."""
        return self.contacts_collections if kind == "contacts" else self.calendars_collections

    def folders(self) -> list[tuple[str, Path]]:
        """(key, folder) of each configured store; a config error when there is none, or when
        one names something that is not a folder (a file would otherwise fail deep inside the
        run with a traceback)."""
        found = [(k, p) for k, p in (("contacts", self.contacts), ("calendars", self.calendars))
                 if p is not None]
        if not found:
            raise ConfigError(f"{self.where}: nothing to sync: set contacts and/or calendars "
                              "(folders of .vcf / .ics files)")
        for key, path in found:
            folder = STORES[self.store_type(key)].is_folder(path)
            if folder and path.exists() and not path.is_dir():
                raise ConfigError(f"{self.where} {key}: {path} is not a folder")
            if not folder and path.is_dir():
                raise ConfigError(f"{self.where} {key}: {path} is a folder; a "
                                  f"{self.store_type(key)} store is one file")
        return found


@dataclass(frozen=True)
class Config:
    """The loaded file: typed tables, paths resolved, `[server]` only if the file has it."""

    path: Path
    server_config: ServerConfig | None
    device: DeviceConfig
    state_dir: Path
    backup: BackupTable | None = None
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def server(self) -> ServerConfig:
        """`[server]`, which only the commands that talk to the DAV server need: a config with
        only `[backup]` serves `backup`, `restore` and `status`."""
        if self.server_config is None:
            raise ConfigError(f"{self.path}: no [server] section: this command needs the DAV "
                              f"server's url and username ({EXAMPLE_HINT})")
        return self.server_config

    def has_server(self) -> bool:
        return self.server_config is not None

    def has_section(self, name: str) -> bool:
        """Whether the file has the optional table `name` (`server` or `backup`)."""
        return {"server": self.server_config, "backup": self.backup}.get(name) is not None

    def where(self, table: str) -> str:
        """How errors name a table of this file, e.g. "config.toml [backup]"."""
        return f"{self.path} [{table}]"


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
    file = decode(raw, ConfigFile, str(path))
    server = None if file.server is None else _checked_server(file.server, f"{path} [server]")
    folder = path.parent
    contacts, contacts_type = _store(file.device.contacts)
    calendars, calendars_type = _store(file.device.calendars)
    where = f"{path} [device]"
    device = DeviceConfig(
        contacts=_maybe_path(contacts, folder), calendars=_maybe_path(calendars, folder),
        where=where, contacts_type=contacts_type, calendars_type=calendars_type,
        contacts_collections=_collections(file.device.contacts, f"{where} [contacts]"),
        calendars_collections=_collections(file.device.calendars, f"{where} [calendars]"),
    )
    state_dir = _maybe_path(file.state.dir, folder) or default_state_dir()
    _warn_if_others_can_read(path, raw)
    return Config(path=path, server_config=server, device=device, state_dir=state_dir,
                  backup=file.backup, daemon=file.daemon, log=file.log)


def _store(value: str | ContactsStore | CalendarsStore | None) -> tuple[str | None, str]:
    """(path, store type) of a `[device]` key: a plain path is a vdir."""
    if value is None or isinstance(value, str):
        return value, "vdir"
    return value.path, str(value.type)


def _collections(value: str | ContactsStore | CalendarsStore | None,
                 where: str) -> CollectionChoice | None:
    """`collections` of a `[device]` store: "all" or the names, once each; only a vdir can
    hold several collections (one folder each)."""
    if value is None or isinstance(value, str) or value.collections is None:
        return None
    if value.type != "vdir":
        raise key_error(where, "collections", f'needs type = "vdir" (one folder per '
                        f'collection under path); a {value.type} store holds one collection')
    if value.collections == "all":
        return "all"
    if not value.collections:
        raise key_error(where, "collections", 'lists no collection: name at least one, or '
                        'write collections = "all"')
    repeated = sorted({n for n in value.collections if value.collections.count(n) > 1})
    if repeated:
        raise key_error(where, "collections", f"names {repeated[0]!r} twice")
    return tuple(value.collections)


def _maybe_path(value: str | None, base_dir: Path) -> Path | None:
    return None if value is None else resolve_path(value, base_dir)


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


def _checked_server(server: ServerConfig, where: str) -> ServerConfig:
    """The rules that tie `[server]` keys together, and the url without its user info."""
    url = None if server.url is None else without_userinfo(server.url)
    if url is not None and not url.startswith(("http://", "https://")):
        raise key_error(where, "url", f"must start with http:// or https://, not {url!r}")
    username, password = _url_credentials(server, where)
    if server.auth == AuthMode.BASIC:
        _check_basic(server, where, url, username)
    else:
        _check_provision(server, where)
    return replace(server, url=url, username=username, password=password)


def _check_basic(server: ServerConfig, where: str, url: str | None,
                 username: str | None) -> None:
    if url is None:
        raise key_error(where, "url", "is required (or set auth = \"provision\")")
    if username is None:
        raise key_error(where, "username", "is required with auth = \"basic\"")
    if server.password is not None and server.password_command is not None:
        raise key_error(where, "password", "give either password or password_command, not both")


def _check_provision(server: ServerConfig, where: str) -> None:
    if server.provision_url is None:
        raise key_error(where, "provision_url", "is required with auth = \"provision\"")
    no_grant = server.issuer is None or server.client_id is None
    if server.assertion_command is None and no_grant:
        raise key_error(
            where, "assertion_command",
            "auth = \"provision\" needs assertion_command, or issuer and client_id "
            "for `davsync login`",
        )


def _url_credentials(server: ServerConfig, where: str) -> tuple[str | None, Secret | None]:
    """`username` and `password`, or the user info of `url` when neither is set. User info
    next to configured credentials, or with provisioned ones, is refused: which would win?"""
    parts = urlsplit(server.url or "")
    if parts.username is None and parts.password is None:
        return server.username, server.password
    if server.auth != AuthMode.BASIC:
        raise key_error(where, "url", 'must not hold a user name or password with auth = '
                        '"provision"')
    if server.username is not None or server.password is not None \
            or server.password_command is not None:
        raise key_error(
            where, "url",
            "holds a user name or password, and username/password are set too: give them "
            "once (the url's are used when username and password are not set)",
        )
    secret = None if parts.password is None else Secret(unquote(parts.password))
    return unquote(parts.username or "") or None, secret
