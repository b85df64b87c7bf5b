"""The systemd system unit for `davsync server`, and the starter `server.toml` of `init`.

Both are rendered with the paths of this installation, so neither expects davsync in a fixed
place; systemd/davsync-server.service in the repository is the rendering for
/usr/local/bin/davsync and /etc/davsync/server.toml (a test keeps the two equal).
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_DAVSYNC = "/usr/local/bin/davsync"
DEFAULT_CONFIG = "/etc/davsync/server.toml"
DEFAULT_DATA_DIR = "/var/lib/davsync-server"

# The hardening options keep `systemd-analyze security` at "OK": the service needs only to
# listen on TCP, read its config and TLS files, and write its StateDirectory.
UNIT_TEMPLATE = """\
# System service for the self-hosted server (Radicale + provisioning + app passwords).
# Written by `davsync server init --unit PATH`, which fills in the paths of your installation.
#   sudo useradd --system --home-dir /var/lib/davsync-server --shell /usr/sbin/nologin davsync
#   sudo davsync --config @CONFIG@ server init --unit /etc/systemd/system/davsync-server.service
#   sudo systemctl daemon-reload && sudo systemctl enable --now davsync-server
#   sudo systemctl reload davsync-server    # re-read the TLS certificate (SIGHUP)
# Listening on a port below 1024 (e.g. 443) needs: AmbientCapabilities=CAP_NET_BIND_SERVICE
# and CapabilityBoundingSet=CAP_NET_BIND_SERVICE (`systemctl edit davsync-server`).
[Unit]
Description=davsync server: Radicale (CardDAV/CalDAV) with device provisioning
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=davsync
Group=davsync
ExecStart=@DAVSYNC@ --config @CONFIG@ server
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
StateDirectory=davsync-server
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
PrivateUsers=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
DevicePolicy=closed

[Install]
WantedBy=multi-user.target
"""


def render_unit(davsync: str = DEFAULT_DAVSYNC, config: str = DEFAULT_CONFIG) -> str:
    return UNIT_TEMPLATE.replace("@DAVSYNC@", davsync).replace("@CONFIG@", config)


def starter_config(data_dir: Path, listen: str) -> str:
    """A server.toml that starts as is: loopback only, no issuers (app passwords only)."""
    return f"""\
# davsync server: Radicale (CardDAV/CalDAV), device provisioning and app passwords.
# Run:        davsync --config THIS_FILE server
# Accounts:   davsync --config THIS_FILE server app-password --create alice --label "Phone"
# Everything: README "Self-hosted server"; protocol: docs/provisioning.md

[server]
# Loopback only. To serve other machines, either terminate TLS here (tls_certificate and
# tls_key) or put a TLS reverse proxy in front and set behind_proxy = true; plain HTTP on
# any other address is refused.
listen = {json.dumps(listen)}
# Collections (data_dir/collections) and the credential store (data_dir/credentials.sqlite3,
# mode 0600, only argon2id hashes). Back both up together: README "Back up the server".
data_dir = {json.dumps(str(data_dir))}
# public_url = "https://dav.example.org/"      # the URL devices are told to use
# tls_certificate = "/etc/davsync/tls/fullchain.pem"
# tls_key = "/etc/davsync/tls/privkey.pem"
# behind_proxy = false
# failed_logins_per_minute = 10               # per client address, then 429
# failed_logins_per_account_per_minute = 10   # per account, then 429
# max_devices = 20

# Trusted OpenID providers, for davsync clients that sign in (`auth = "provision"`).
# Without any, only app passwords made with `davsync server app-password` work.
# [[issuers]]
# issuer = "https://accounts.google.com"
# client_id = "1234.apps.googleusercontent.com"
# allowed_email_domains = ["example.org"]
"""
