"""The client's configuration file, declared: every table, key, type, default and bound.

Read by `davsync.config.loader` through `davsync.config.decode`, which refuses unknown keys,
wrong types and out-of-range values with a message naming the key. Rules that tie keys together
(`auth = "basic"` needs `url` and `username`, ...) live in the loader, beside the messages that
explain them. Choices are enums (`StrEnum`: they compare equal to their strings) and travel as
such into the rooms that act on them.

Strings are non-empty and paths stay strings here: the loader resolves them against the file's
folder, which a schema cannot know.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from msgspec import Meta, field

from davsync.backup.settings import EncryptionMode as EncryptionMode  # re-exported
from davsync.config.decode import Table
from davsync.core.policy import ConflictPolicy
from davsync.dav.api import DEFAULT_REQUEST_TIMEOUT
from davsync.secret import Secret

Text = Annotated[str, Meta(pattern=r"\S")]  # a string that is not blank
PathList = Annotated[list[str] | str, Meta(extra={"expect": "a list of paths"})]


def _int(low: int, high: int | None = None) -> Meta:
    return Meta(ge=low) if high is None else Meta(ge=low, le=high)


class AuthMode(StrEnum):
    """How the client signs in to the DAV server (`[server] auth`)."""

    BASIC = "basic"  # username and password (or password_command)
    PROVISION = "provision"  # a device password provisioned from an identity provider's token


class DaemonMode(StrEnum):
    """What `davsync run` keeps doing (`[daemon] mode`)."""

    BOTH = "both"  # sync and back up
    BACKUP = "backup"  # back up only (the sync job is off)
    RESTORE = "restore"  # never uploads
    DISABLED = "disabled"  # only reports


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    AUTO = "auto"  # journal under systemd (JOURNAL_STREAM set), else text
    TEXT = "text"  # readable on a terminal
    JOURNAL = "journal"  # one line per event, priority prefix and key=value fields


class ContactsStoreType(StrEnum):
    """What kind of device store `[device] contacts` is (`davsync.sources.registry`)."""

    VDIR = "vdir"  # a folder with one .vcf per contact
    SINGLEFILE = "singlefile"  # one .vcf holding many contacts
    MOZCONTACTS_JSON = "mozcontacts-json"  # a Firefox OS / KaiOS JSON export
    GOOGLE_CSV = "google-csv"  # a Google Contacts CSV export


class CalendarsStoreType(StrEnum):
    """What kind of device store `[device] calendars` is."""

    VDIR = "vdir"  # a folder with one .ics per event or task
    SINGLEFILE = "singlefile"  # one .ics holding many events and tasks


_STORE = Meta(extra={"expect": 'a path, or a table { type = "...", path = "..." }'})
# `collections = "all"` or a list of names: every (or each named) collection of the kind, each
# in its own folder under `path` (khal, khard and vdirsyncer's layout). The loader checks the rest.
Collections = Annotated[
    Literal["all"] | list[Text] | None,
    Meta(extra={"expect": '"all" or a list of collection names, e.g. ["family", "work"]'}),
]


class ContactsStore(Table, frozen=True):
    """`[device] contacts = { type = "...", path = "..." }`."""

    type: ContactsStoreType
    path: Text
    collections: Collections = None


class CalendarsStore(Table, frozen=True):
    """`[device] calendars = { type = "...", path = "..." }`."""

    type: CalendarsStoreType
    path: Text
    collections: Collections = None


class ServerConfig(Table, frozen=True):
    """`[server]`: which DAV account, how to authenticate, and how hard to push it."""

    url: Text | None = None
    username: Text | None = None
    password: Secret | None = None
    password_command: Text | None = None
    addressbook: Text = "contacts"
    calendar: Text = "personal"
    create: bool = False
    verify_tls: bool = True
    conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    auth: AuthMode = AuthMode.BASIC
    provision_url: Text | None = None
    assertion_command: Text | None = None
    issuer: Text | None = None
    client_id: Text | None = None
    device_name: Text | None = None
    connect_timeout: Annotated[float, Meta(ge=0.1)] = 10.0
    read_timeout: Annotated[float, Meta(ge=0.1)] = 60.0
    request_timeout: Annotated[float, Meta(ge=1.0)] = DEFAULT_REQUEST_TIMEOUT
    multiget_batch: Annotated[int, _int(1, 1000)] = 50
    concurrency: Annotated[int, _int(1, 32)] = 4
    max_retries: Annotated[int, _int(0, 20)] = 4

    def resolve_password(self) -> Secret:
        """The basic-auth password: inline, or the first line of `password_command`."""
        if self.password is not None:
            return self.password
        if self.password_command is not None:
            from davsync.secret_command import run_secret_command

            return run_secret_command(self.password_command, "[server] password_command")
        return Secret("")


class DeviceTable(Table, frozen=True):
    """`[device]`: the stores to keep in step with the server; a plain path is a vdir."""

    contacts: Annotated[Text | ContactsStore | None, _STORE] = None
    calendars: Annotated[Text | CalendarsStore | None, _STORE] = None


class StateTable(Table, frozen=True):
    """`[state]`: where the sync state lives (default `$XDG_STATE_HOME/davsync`)."""

    dir: Text | None = None


class BackupTable(Table, frozen=True):
    """`[backup]`: the encrypted S3 backup. Which keys a backup needs (bucket, passphrase) is
    checked by the backup room when it runs, so a config without them still serves `sync`."""

    endpoint: Text | None = None
    bucket: Text | None = None
    prefix: Text | None = None
    region: Text = "us-east-1"
    access_key: Text | None = None
    secret_key: Secret | None = None
    access_key_command: Text | None = None
    secret_key_command: Text | None = None
    encryption: EncryptionMode = EncryptionMode.CLIENT
    passphrase: Secret | None = None
    passphrase_command: Text | None = None
    images: PathList = field(default_factory=list)
    videos: PathList = field(default_factory=list)
    documents: PathList = field(default_factory=list)
    unmetered_only: bool = False
    retention_days: Annotated[int, _int(1, 36500)] = 30
    concurrency: Annotated[int, _int(1, 64)] = 4
    part_size_mib: Annotated[int, _int(5, 512)] = 8


class DaemonConfig(Table, frozen=True):
    """`[daemon]`: read by `davsync run`, the long-running daemon. Intervals in
    seconds; each run starts up to `jitter` seconds late at random, so that many devices do
    not all ask the server at the same moment."""

    sync_interval: Annotated[float, Meta(ge=1.0)] = 60.0
    backup_interval: Annotated[float, Meta(ge=60.0)] = 3600.0
    jitter: Annotated[float, Meta(ge=0.0)] = 10.0
    mode: DaemonMode = DaemonMode.BOTH


class LogConfig(Table, frozen=True):
    """`[log]`: read by `davsync run` at start (-v/-vv win over `level`; other commands log
    as -v/-vv say)."""

    level: LogLevel = LogLevel.WARNING
    format: LogFormat = LogFormat.AUTO


class ConfigFile(Table, frozen=True):
    """The whole client file. Every table is optional here: which a command needs is checked
    when it asks (`Config.server`, `DeviceConfig.folders`, `parse_backup`)."""

    server: ServerConfig | None = None
    device: DeviceTable = field(default_factory=DeviceTable)
    state: StateTable = field(default_factory=StateTable)
    backup: BackupTable | None = None
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    log: LogConfig = field(default_factory=LogConfig)

