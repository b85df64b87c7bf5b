"""The self-hosted server's config file (`server.toml`): `[server]`, `[[issuers]]`, `[radicale]`.

It has its own schema (declared here), separate from the client's; it is read the same way
(`davsync.config.decode`), so every error names the file and the key and exits with code 2.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from msgspec import Meta
from msgspec import field as default

from davsync.config.decode import Table, decode, key_error, load_toml, resolve_path
from davsync.config.schema import LogLevel, Text
from davsync.errors import ConfigError

Rate = Annotated[float, Meta(ge=0.1)]  # per minute
Seconds = Annotated[float, Meta(ge=0.0)]
StrList = Annotated[list[Annotated[str, Meta(min_length=1)]],
                    Meta(extra={"expect": "a list of non-empty strings"})]
# Radicale options the server decides itself; overriding them would break auth or isolation.
RADICALE_OWNED = {
    ("auth", "type"), ("auth", "cache_logins"), ("auth", "delay"), ("rights", "type"),
    ("storage", "filesystem_folder"), ("web", "type"), ("server", "hosts"),
}


class ServerTable(Table, frozen=True):
    """`[server]` as written; `ServerSettings` is what the server makes of it."""

    listen: Text = "127.0.0.1:5232"
    data_dir: Text | None = None
    public_url: Text | None = None
    log_level: LogLevel = LogLevel.INFO
    provision_per_minute: Rate = 10.0
    failed_logins_per_minute: Rate = 10.0
    failed_logins_per_account_per_minute: Rate = 10.0
    failed_login_delay: Seconds = 0.1
    max_devices: Annotated[int, Meta(ge=1)] = 20
    jwks_min_refresh: Seconds = 30.0
    login_cache_seconds: Seconds = 60.0
    tls_certificate: Text | None = None
    tls_key: Text | None = None
    behind_proxy: bool = False


class IssuerTable(Table, frozen=True):
    issuer: Text
    client_id: Text
    allowed_subjects: StrList = default(default_factory=list)
    allowed_email_domains: StrList = default(default_factory=list)


class ServerFile(Table, frozen=True):
    """The whole `server.toml`. `[radicale.<section>]` options pass through to Radicale."""

    server: ServerTable = default(default_factory=ServerTable)
    issuers: Annotated[list[IssuerTable], Meta(extra={"expect": "an array of tables: [[issuers]]"})
                       ] = default(default_factory=list)
    radicale: dict[str, Any] = default(default_factory=dict)


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted OpenID provider and the audience (client id) its ID tokens must carry."""

    issuer: str
    client_id: str
    allowed_subjects: tuple[str, ...] = ()
    allowed_email_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    """Everything `davsync server` needs; `davsync example-config --server` shows each key."""

    path: Path
    host: str
    port: int
    data_dir: Path
    issuers: tuple[IssuerConfig, ...]
    public_url: str | None = None
    log_level: LogLevel = LogLevel.INFO
    provision_per_minute: float = 10.0
    failed_logins_per_minute: float = 10.0
    failed_login_delay: float = 0.1
    max_devices: int = 20
    jwks_min_refresh: float = 30.0
    login_cache_seconds: float = 60.0
    radicale: dict[str, dict[str, str]] = field(default_factory=dict)
    failed_logins_per_account_per_minute: float = 10.0
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    behind_proxy: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls_certificate else "http"

    @property
    def collections_dir(self) -> Path:
        return self.data_dir / "collections"

    @property
    def credentials_db(self) -> Path:
        return credentials_db_for(self.collections_dir)


def credentials_db_for(collections_dir: Path) -> Path:
    """The credential store lives next to Radicale's collections, so the plugin finds it alone."""
    return collections_dir.parent / "credentials.sqlite3"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_fetch_url(url: str) -> str | None:
    """Why `url` may not be fetched for keys (None if fine): https, or http on loopback only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return None
    return "must be an https:// URL (http:// only on a loopback address such as 127.0.0.1)"


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); raises ValueError with the reason."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"must look like 127.0.0.1:5232 or [::1]:5232, not {value!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be at most 65535, not {port}")
    return host.strip("[]"), port


def load_server_settings(path: Path | None) -> ServerSettings:
    """Read and validate `server.toml`; every ConfigError names the file and key."""
    if path is None:
        raise ConfigError(
            "davsync server needs its own config: davsync --config server.toml server "
            "(`davsync example-config --server` prints a commented example)"
        )
    raw = load_toml(path)
    return parse_server_settings(raw, path)


def parse_server_settings(raw: dict[str, Any], path: Path) -> ServerSettings:
    file = decode(raw, ServerFile, str(path))
    srv, where = file.server, f"{path} [server]"
    try:
        host, port = parse_listen(srv.listen)
    except ValueError as exc:
        raise key_error(where, "listen", str(exc)) from None
    if srv.data_dir is None:
        raise key_error(where, "data_dir",
                        "is required (where collections and credentials are kept)")
    public_url = srv.public_url
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise key_error(where, "public_url",
                        f"must start with http:// or https://, not {public_url!r}")
    certificate, key = (None if p is None else resolve_path(p, path.parent)
                        for p in (srv.tls_certificate, srv.tls_key))
    if (certificate is None) != (key is None):
        missing = "tls_key" if key is None else "tls_certificate"
        raise key_error(where, missing, "is required together with "
                        f"{'tls_certificate' if key is None else 'tls_key'} (PEM files)")
    if certificate is None and not srv.behind_proxy and not is_loopback_host(host):
        raise key_error(where, "listen", plain_http_refused(host))
    return ServerSettings(
        path=path,
        host=host,
        port=port,
        data_dir=resolve_path(srv.data_dir, path.parent),
        issuers=_issuers(file.issuers, path),
        public_url=public_url.rstrip("/") + "/" if public_url else None,
        log_level=srv.log_level,
        provision_per_minute=srv.provision_per_minute,
        failed_logins_per_minute=srv.failed_logins_per_minute,
        failed_login_delay=srv.failed_login_delay,
        max_devices=srv.max_devices,
        jwks_min_refresh=srv.jwks_min_refresh,
        login_cache_seconds=srv.login_cache_seconds,
        radicale=_radicale(file.radicale, f"{path} [radicale]"),
        failed_logins_per_account_per_minute=srv.failed_logins_per_account_per_minute,
        tls_certificate=certificate,
        tls_key=key,
        behind_proxy=srv.behind_proxy,
    )


def plain_http_refused(host: str) -> str:
    """Passwords would cross the network in clear: say the two ways out."""
    return (
        f"plain HTTP on {host!r} (not a loopback address) would send passwords in clear; set "
        "tls_certificate and tls_key, or behind_proxy = true if a TLS reverse proxy forwards "
        "to this address"
    )


def _issuers(tables: list[IssuerTable], path: Path) -> tuple[IssuerConfig, ...]:
    out: list[IssuerConfig] = []
    for index, t in enumerate(tables):
        where = f"{path} [[issuers]] #{index + 1}"
        issuer = t.issuer.rstrip("/")
        problem = check_fetch_url(issuer)
        if problem:
            raise key_error(where, "issuer", f"{problem}; got {issuer!r}")
        if any(i.issuer == issuer for i in out):
            raise key_error(where, "issuer", f"{issuer!r} is listed twice")
        domains = tuple(d.lower().lstrip("@") for d in t.allowed_email_domains)
        out.append(IssuerConfig(issuer=issuer, client_id=t.client_id,
                                allowed_subjects=tuple(t.allowed_subjects),
                                allowed_email_domains=domains))
    return tuple(out)


def _radicale(tables: dict[str, Any], where: str) -> dict[str, dict[str, str]]:
    """`[radicale.<section>]` tables pass extra options through to Radicale, as strings: they
    are Radicale's to check, except the ones davsync decides itself."""
    out: dict[str, dict[str, str]] = {}
    for section, options in tables.items():
        if not isinstance(options, dict):
            raise key_error(where, section, "must be a table, e.g. [radicale.logging]")
        out[section] = {}
        for key, value in options.items():
            if (section, key) in RADICALE_OWNED:
                raise key_error(f"{where} [{section}]", key,
                                "is set by davsync server itself and cannot be overridden")
            if isinstance(value, bool):
                value = "True" if value else "False"
            if not isinstance(value, str | int | float):
                raise key_error(f"{where} [{section}]", key,
                                "must be a string, number or boolean")
            out[section][key] = str(value)
    return out
