"""The self-hosted server's config file (`server.toml`): `[server]`, `[[issuers]]`, `[radicale]`.

It has its own schema, separate from the client's; it is read through `davsync.settings.Table`
so every error names the file and the key and exits with code 2.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from davsync.errors import ConfigError
from davsync.settings import Table, load_toml

SERVER_KEYS = (
    "listen", "data_dir", "public_url", "log_level", "provision_per_minute",
    "failed_logins_per_minute", "failed_logins_per_account_per_minute", "failed_login_delay",
    "max_devices", "jwks_min_refresh", "login_cache_seconds", "tls_certificate", "tls_key",
    "behind_proxy",
)
ISSUER_KEYS = ("issuer", "client_id", "allowed_subjects", "allowed_email_domains")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Radicale options the server decides itself; overriding them would break auth or isolation.
RADICALE_OWNED = {
    ("auth", "type"), ("auth", "cache_logins"), ("auth", "delay"), ("rights", "type"),
    ("storage", "filesystem_folder"), ("web", "type"), ("server", "hosts"),
}


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted OpenID provider and the audience (client id) its ID tokens must carry."""

    issuer: str
    client_id: str
    allowed_subjects: tuple[str, ...] = ()
    allowed_email_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    """Everything `davsync server` needs; see config/server.example.toml for each key."""

    path: Path
    host: str
    port: int
    data_dir: Path
    issuers: tuple[IssuerConfig, ...]
    public_url: str | None = None
    log_level: str = "info"
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
            "(see config/server.example.toml)"
        )
    raw = load_toml(path)
    return parse_server_settings(raw, path)


def parse_server_settings(raw: dict[str, Any], path: Path) -> ServerSettings:
    root = Table(raw, str(path), path.parent)
    root.check_keys(["server", "issuers", "radicale"])
    srv = root.table("server")
    srv.check_keys(SERVER_KEYS)
    try:
        host, port = parse_listen(srv.str("listen", "127.0.0.1:5232") or "")
    except ValueError as exc:
        raise srv.error("listen", str(exc)) from None
    data_dir = srv.path("data_dir")
    if data_dir is None:
        raise srv.error("data_dir", "is required (where collections and credentials are kept)")
    public_url = srv.str("public_url")
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise srv.error("public_url", f"must start with http:// or https://, not {public_url!r}")
    certificate, key = srv.path("tls_certificate"), srv.path("tls_key")
    if (certificate is None) != (key is None):
        missing = "tls_key" if key is None else "tls_certificate"
        raise srv.error(missing, "is required together with "
                        f"{'tls_certificate' if key is None else 'tls_key'} (PEM files)")
    behind_proxy = srv.bool("behind_proxy", False)
    if certificate is None and not behind_proxy and not is_loopback_host(host):
        raise srv.error("listen", plain_http_refused(host))
    return ServerSettings(
        path=path,
        host=host,
        port=port,
        data_dir=data_dir,
        issuers=_issuers(raw.get("issuers", []), path),
        public_url=public_url.rstrip("/") + "/" if public_url else None,
        log_level=srv.choice("log_level", LOG_LEVELS, "info"),
        provision_per_minute=srv.float("provision_per_minute", 10.0, minimum=0.1),
        failed_logins_per_minute=srv.float("failed_logins_per_minute", 10.0, minimum=0.1),
        failed_login_delay=srv.float("failed_login_delay", 0.1),
        max_devices=srv.int("max_devices", 20, minimum=1),
        jwks_min_refresh=srv.float("jwks_min_refresh", 30.0),
        login_cache_seconds=srv.float("login_cache_seconds", 60.0),
        radicale=_radicale(root.table("radicale")),
        failed_logins_per_account_per_minute=srv.float(
            "failed_logins_per_account_per_minute", 10.0, minimum=0.1),
        tls_certificate=certificate,
        tls_key=key,
        behind_proxy=behind_proxy,
    )


def plain_http_refused(host: str) -> str:
    """Passwords would cross the network in clear: say the two ways out."""
    return (
        f"plain HTTP on {host!r} (not a loopback address) would send passwords in clear; set "
        "tls_certificate and tls_key, or behind_proxy = true if a TLS reverse proxy forwards "
        "to this address"
    )


def _issuers(value: Any, path: Path) -> tuple[IssuerConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{path} issuers: must be an array of tables: [[issuers]]")
    out: list[IssuerConfig] = []
    for index, item in enumerate(value):
        t = Table(item, f"{path} [[issuers]] #{index + 1}")
        t.check_keys(ISSUER_KEYS)
        issuer = t.req_str("issuer").rstrip("/")
        problem = check_fetch_url(issuer)
        if problem:
            raise t.error("issuer", f"{problem}; got {issuer!r}")
        if any(i.issuer == issuer for i in out):
            raise t.error("issuer", f"{issuer!r} is listed twice")
        out.append(
            IssuerConfig(
                issuer=issuer,
                client_id=t.req_str("client_id"),
                allowed_subjects=_str_list(t, "allowed_subjects"),
                allowed_email_domains=tuple(
                    d.lower().lstrip("@") for d in _str_list(t, "allowed_email_domains")
                ),
            )
        )
    return tuple(out)


def _str_list(t: Table, key: str) -> tuple[str, ...]:
    value = t.data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise t.error(key, "must be a list of non-empty strings")
    return tuple(value)


def _radicale(t: Table) -> dict[str, dict[str, str]]:
    """`[radicale.<section>]` tables pass extra options through to Radicale, as strings."""
    out: dict[str, dict[str, str]] = {}
    for section, options in t.data.items():
        sub = t.table(section)
        if not isinstance(options, dict):
            raise t.error(section, "must be a table, e.g. [radicale.logging]")
        out[section] = {}
        for key, value in options.items():
            if (section, key) in RADICALE_OWNED:
                raise sub.error(key, "is set by davsync server itself and cannot be overridden")
            if isinstance(value, bool):
                value = "True" if value else "False"
            if not isinstance(value, str | int | float):
                raise sub.error(key, "must be a string, number or boolean")
            out[section][key] = str(value)
    return out
