"""The shipped example config parses, and config errors name the key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from davsync.config import (
    AuthMode,
    DaemonConfig,
    DaemonMode,
    EncryptionMode,
    LogConfig,
    LogFormat,
    LogLevel,
    load_config,
)
from davsync.core.policy import ConflictPolicy
from davsync.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "davsync" / "examples" / "davsync.example.toml")
    assert config.server.addressbook == "contacts"
    assert config.server.conflict == "keep-both"
    assert config.device.contacts == Path("/home/alice/.contacts")
    assert "change-me" not in repr(config)


def test_lookup_order_env_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg" / "davsync"
    xdg.mkdir(parents=True)
    (xdg / "config.toml").write_text('[server]\nurl = "http://x/"\nusername = "xdg"\n')
    env = tmp_path / "env.toml"
    env.write_text('[server]\nurl = "http://x/"\nusername = "env"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DAVSYNC_CONFIG", raising=False)
    assert load_config().server.username == "xdg"
    monkeypatch.setenv("DAVSYNC_CONFIG", str(env))
    assert load_config().server.username == "env"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert load_config().state_dir == tmp_path / "state" / "davsync"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nurl = "http://x/"\nusername = 3\n', "username: must be a string"),
        ('[server]\nurl = "http://x/"\nusername = "a"\nconcurrency = 0\n', "concurrency"),
        ('[server]\nurl = "http://x/"\nusername = "a"\nverify_tls = "no"\n', "verify_tls"),
        ('[sever]\n', "sever: unknown key (did you mean 'server'?)"),
        ('[server]\nauth = "provision"\n', "provision_url: is required"),
        ('[server]\nurl = "http://x/"\nusername = "a"\npassword = "p"\npassword_command = "x"\n',
         "not both"),
    ],
)
def test_errors_name_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_password_command_first_line_and_failure(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\n'
                    "password_command = \"printf 's3cret\\nignored'\"\n")
    assert load_config(path).server.resolve_password().reveal() == "s3cret"
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\npassword_command = "false"\n')
    with pytest.raises(ConfigError, match="exited with status 1"):
        load_config(path).server.resolve_password()


def test_a_config_with_only_backup_loads_and_server_is_asked_for_only_when_needed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[backup]\nbucket = "bkt"\n')
    config = load_config(path)
    assert not config.has_server()
    with pytest.raises(ConfigError, match=re.escape(f"{path}: no [server] section")):
        config.server  # noqa: B018


def test_create_is_off_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\n')
    assert load_config(path).server.create is False
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\ncreate = true\n')
    assert load_config(path).server.create is True


def test_user_info_in_the_url_is_the_credentials_and_never_kept_in_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nurl = "https://al%40ice:p%40ss-s3cret@dav.example/dav/"\n')
    server = load_config(path).server
    assert server.url == "https://dav.example/dav/"
    assert server.username == "al@ice" and server.resolve_password().reveal() == "p@ss-s3cret"
    assert "s3cret" not in repr(load_config(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "[device]: nothing to sync"),
        ('[device]\ncontacts = "FILE"\n', "[device] contacts: FILE is not a folder"),
    ],
)
def test_device_folders_for_sync(tmp_path: Path, text: str, message: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    path = tmp_path / "c.toml"
    path.write_text(text.replace("FILE", str(afile)))
    with pytest.raises(ConfigError, match=re.escape(message.replace("FILE", str(afile)))):
        load_config(path).device.folders()


@pytest.mark.parametrize(
    ("text", "mode", "warned"),
    [
        ('[server]\nurl = "http://x/"\nusername = "a"\npassword = "pw-Secret-1"\n', 0o644,
         "[server] password"),
        ('[backup]\nbucket = "bkt"\npassphrase = "Pass-phrase-1"\n', 0o640,
         "[backup] passphrase"),
        ('[server]\nurl = "http://x/"\nusername = "a"\npassword = "pw-Secret-1"\n', 0o600, None),
        ('[server]\nurl = "http://x/"\nusername = "a"\npassword_command = "pass x"\n', 0o644,
         None),
    ],
)
def test_a_readable_config_holding_a_secret_gets_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, mode: int, warned: str | None
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    path.chmod(mode)
    load_config(path)
    messages = [r.getMessage() for r in caplog.records]
    if warned is None:
        assert messages == []
    else:
        assert messages == [f"{path} holds {warned} and other users can read it: "
                            f"run `chmod 600 {path}`"]
        assert "pw-Secret-1" not in messages[0] and "Pass-phrase-1" not in messages[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nurl = "http://a:s3cret@x/"\nusername = "a"\n', "give them once"),
        ('[server]\nurl = "http://a:s3cret@x/"\npassword_command = "echo"\n', "give them once"),
        ('[server]\nauth = "provision"\nprovision_url = "http://x/p"\nassertion_command = "t"\n'
         'url = "http://a:s3cret@x/"\n', 'with auth = "provision"'),
        ('[server]\nurl = "htp://a:s3cret@x/"\nusername = "a"\n', "must start with http://"),
        ('[server]\nurl = "http://:s3cret@x/"\n', "username: is required"),
    ],
)
def test_user_info_next_to_other_credentials_is_refused_without_echoing_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_config(path)
    assert "s3cret" not in str(info.value)


def test_request_timeout_bounds_each_request(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\nrequest_timeout = 30\n')
    assert load_config(path).server.request_timeout == 30
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\n')
    assert load_config(path).server.request_timeout == 600


def test_every_table_is_checked_at_load_with_the_key_named(tmp_path: Path) -> None:
    """`[daemon]`, `[log]` and `[backup]` are checked when the file is read: a typo there stops
    every command, it does not pass silently until the room that owns the table runs."""
    path = tmp_path / "c.toml"
    cases = [
        ("[daemon]\nsync_intervall = 30\n",
         "[daemon] sync_intervall: unknown key (did you mean 'sync_interval'?)"),
        ('[daemon]\nmode = "sync"\n',
         "[daemon] mode: must be one of 'both', 'backup', 'restore', 'disabled', not 'sync'"),
        ("[daemon]\njitter = -1\n", "[daemon] jitter: must be >= 0.0, not -1"),
        ('[daemon]\nsync_interval = "1m"\n',
         "[daemon] sync_interval: must be a number, not str '1m'"),
        ('[log]\nlevel = "verbose"\n',
         "[log] level: must be one of 'debug', 'info', 'warning', 'error', not 'verbose'"),
        ('[log]\nformat = "json"\n',
         "[log] format: must be one of 'auto', 'text', 'journal', not 'json'"),
        ("[log]\nlevle = 'debug'\n", "[log] levle: unknown key (did you mean 'level'?)"),
        ('[backup]\nbucket = "bkt"\nimagez = ["x"]\n',
         "[backup] imagez: unknown key (did you mean 'images'?)"),
        ('[backup]\nimages = [1]\n', "[backup] images: must be a list of paths"),
        ("daemon = 5\n", "[daemon]: must be a table"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path} {message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("concurrency = 0", "concurrency: must be between 1 and 32, not 0"),
        ("max_retries = 2.5", "max_retries: must be an integer, not float 2.5"),
        ("read_timeout = 0", "read_timeout: must be >= 0.1, not 0"),
        ("create = 1", "create: must be true or false, not int 1"),
        ("multiget_batch = true", "multiget_batch: must be an integer, not a boolean"),
        ('addressbook = "  "', "addressbook: must not be empty"),
        ('conflict = "mine"', "conflict: must be one of 'keep-both', 'device-wins', "
                              "'server-wins', not 'mine'"),
        ('auth = "oauth"', "auth: must be one of 'basic', 'provision', not 'oauth'"),
        ("userame = 'a'", "userame: unknown key (did you mean 'username'?)"),
        ("zzz = 1", "zzz: unknown key; known keys: url, username, password"),
    ],
)
def test_server_errors_say_what_is_wrong(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nurl = "http://x/"\nusername = "a"\n{line}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path} [server] {message}")


def test_choices_are_enums_and_the_daemon_and_log_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nurl = "http://x/"\nusername = "a"\nconflict = "server-wins"\n'
                    '[backup]\nencryption = "sse-c"\n[daemon]\nmode = "restore"\n')
    config = load_config(path)
    assert config.server.conflict is ConflictPolicy.SERVER_WINS
    assert config.server.auth is AuthMode.BASIC
    assert config.backup is not None and config.backup.encryption is EncryptionMode.SSE_C
    assert config.daemon.mode is DaemonMode.RESTORE
    assert (config.daemon.sync_interval, config.daemon.backup_interval) == (60, 3600)
    assert config.log.level is LogLevel.WARNING and config.log.format is LogFormat.AUTO


def test_a_typo_in_daemon_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[backup]\nbucket = "bkt"\n[daemon]\nbackup_intervall = 60\n')
    script = Path(sys.executable).parent / "davsync"
    proc = subprocess.run([str(script), "--config", str(path), "status"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert (proc.returncode, proc.stderr) == (
        2, f"davsync: {path} [daemon] backup_intervall: unknown key "
           "(did you mean 'backup_interval'?)\n")


def test_every_key_the_example_documents_is_in_the_schema(tmp_path: Path) -> None:
    """The example's commented-out tables and keys, uncommented, still load: a key documented
    there but unknown to the schema (or a wrong value in a comment) fails here."""
    example = (ROOT / "config" / "davsync.example.toml").read_text()
    lines = [re.sub(r"^# ?(?=\[[a-z]+\]|[a-z_]+ = )", "", line) for line in example.splitlines()]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines))
    config = load_config(path)
    assert config.has_section("backup") and config.server.auth is AuthMode.PROVISION
    assert config.daemon == DaemonConfig() and config.log == LogConfig()


def test_device_stores_by_type_and_the_plain_path_is_a_vdir(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[device]\ncontacts = { type = "google-csv", path = "g.csv" }\n'
                    'calendars = "cal"\n')
    device = load_config(path).device
    assert (device.contacts, device.store_type("contacts")) == (tmp_path / "g.csv", "google-csv")
    assert (device.calendars, device.store_type("calendars")) == (tmp_path / "cal", "vdir")
    (tmp_path / "g.csv").mkdir()
    with pytest.raises(ConfigError, match=r"contacts: .*g\.csv is a folder; a google-csv store"):
        device.folders()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('contacts = { type = "bogus", path = "x" }',
         "[device] [contacts] type: must be one of 'vdir', 'singlefile', 'mozcontacts-json', "
         "'google-csv', not 'bogus'"),
        ('calendars = { type = "google-csv", path = "x" }',
         "[device] [calendars] type: must be one of 'vdir', 'singlefile', not 'google-csv'"),
        ('calendars = { type = "vdir" }', "[device] [calendars] path: is required"),
        ("calendars = 5",
         '[device] calendars: must be a path, or a table { type = "...", path = "..." }'),
    ],
)
def test_a_wrong_device_store_names_the_key_and_the_choices(
    tmp_path: Path, line: str, message: str,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[device]\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_the_schema_offers_exactly_the_registered_stores() -> None:
    from davsync.config.schema import CalendarsStoreType, ContactsStoreType
    from davsync.sources.registry import store_types

    assert [t.value for t in ContactsStoreType] == store_types("contacts")
    assert [t.value for t in CalendarsStoreType] == store_types("calendars")
