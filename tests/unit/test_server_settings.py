"""server.toml parsing: defaults, and errors that name the file and key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from davsync.config import LogLevel
from davsync.errors import EXIT_CONFIG, ConfigError
from davsync.server.settings import check_fetch_url, parse_listen, parse_server_settings

PATH = Path("/etc/davsync/server.toml")
GOOD = """
[server]
listen = "127.0.0.1:5232"
data_dir = "/var/lib/davsync-server"

[[issuers]]
issuer = "https://accounts.google.com/"
client_id = "1234.apps.googleusercontent.com"
"""


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_server_settings(tomllib.loads(text), PATH)


def test_example_values_and_defaults() -> None:
    s = parse(GOOD)
    assert (s.host, s.port) == ("127.0.0.1", 5232)
    assert s.collections_dir == Path("/var/lib/davsync-server/collections")
    assert s.credentials_db == Path("/var/lib/davsync-server/credentials.sqlite3")
    assert s.issuers[0].issuer == "https://accounts.google.com"
    assert s.failed_logins_per_minute == 10 and s.max_devices == 20


def test_relative_data_dir_is_relative_to_the_config_file() -> None:
    s = parse(GOOD.replace("/var/lib/davsync-server", "state"))
    assert s.data_dir == Path("/etc/davsync/state")


def test_example_config_file_parses() -> None:
    example = Path(__file__).parents[2] / "davsync" / "examples" / "server.example.toml"
    s = parse_server_settings(tomllib.loads(example.read_text()), example)
    assert s.issuers and s.port == 5232


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace("listen", "lisen"), "lisen: unknown key (did you mean 'listen'?)"),
        (GOOD.replace('"127.0.0.1:5232"', '"localhost"'), "listen: must look like"),
        (GOOD.replace('data_dir = "/var/lib/davsync-server"', ""), "data_dir: is required"),
        (GOOD.replace("https://accounts", "http://accounts"), "issuer: must be an https://"),
        (GOOD.replace('client_id = "1234.apps.googleusercontent.com"', ""),
         "client_id: is required"),
        (GOOD + '[radicale.auth]\ntype = "none"\n', "type: is set by davsync server"),
        (GOOD.replace("[server]", "[server]\nmax_devices = 0"), "max_devices: must be >= 1"),
    ],
)
def test_errors_name_the_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert needle in str(info.value)
    assert str(PATH) in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


def test_http_issuer_allowed_on_loopback_only() -> None:
    assert check_fetch_url("http://127.0.0.1:8080") is None
    assert check_fetch_url("http://[::1]:8080") is None
    assert check_fetch_url("http://localhost:8080") is None
    assert check_fetch_url("https://id.example") is None
    assert check_fetch_url("http://id.example") is not None
    assert check_fetch_url("ftp://127.0.0.1") is not None


def test_listen_ipv6() -> None:
    assert parse_listen("[::1]:5232") == ("::1", 5232)
    with pytest.raises(ValueError, match="at most 65535"):
        parse_listen("127.0.0.1:70000")


def test_plain_http_only_on_loopback_unless_behind_a_proxy_or_tls() -> None:
    for host in ("127.0.0.1", "[::1]", "localhost"):
        assert parse(GOOD.replace("127.0.0.1", host)).scheme == "http"
    with pytest.raises(ConfigError, match=r"listen: plain HTTP on '0.0.0.0'"):
        parse(GOOD.replace("127.0.0.1", "0.0.0.0"))


def test_behind_proxy_or_tls_allow_other_addresses() -> None:
    base = GOOD.replace("127.0.0.1", "0.0.0.0")
    proxied = parse(base.replace("[server]", "[server]\nbehind_proxy = true"))
    assert proxied.behind_proxy and proxied.scheme == "http"
    tls = parse(base.replace("[server]", '[server]\ntls_certificate = "c.pem"\n'
                                         'tls_key = "k.pem"'))
    assert tls.scheme == "https" and tls.tls_key == Path("/etc/davsync/k.pem")


def test_tls_certificate_and_key_come_together() -> None:
    with pytest.raises(ConfigError, match="tls_key: is required together with tls_certificate"):
        parse(GOOD.replace("[server]", '[server]\ntls_certificate = "c.pem"'))
    with pytest.raises(ConfigError, match="tls_certificate: is required together with tls_key"):
        parse(GOOD.replace("[server]", '[server]\ntls_key = "k.pem"'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("[[issuers]]", "[issuers]"),
         "issuers: must be an array of tables: [[issuers]]"),
        ("issuers = [1]\n" + GOOD.split("[[issuers]]")[0], "[[issuers]] #1: must be a table"),
        (GOOD + "allowed_subjects = ['']\n",
         "[[issuers]] #1 allowed_subjects: must be a list of non-empty strings"),
        (GOOD + "clientid = 'x'\n",
         "[[issuers]] #1 clientid: unknown key (did you mean 'client_id'?)"),
        ('radicale = 1\n' + GOOD, "[radicale]: must be a table"),
        (GOOD + "[radicale]\nlogging = 1\n",
         "[radicale] logging: must be a table, e.g. [radicale.logging]"),
        (GOOD + "[radicale.logging]\nlevel = [1]\n",
         "[radicale] [logging] level: must be a string, number or boolean"),
        (GOOD.replace("[server]", '[server]\nlog_level = "trace"'),
         "[server] log_level: must be one of 'debug', 'info', 'warning', 'error', not 'trace'"),
        (GOOD.replace("[server]", "[server]\nfailed_login_delay = -1"),
         "[server] failed_login_delay: must be >= 0.0, not -1"),
        ("server = 1\n", "[server]: must be a table"),
    ],
)
def test_each_table_and_key_is_named_exactly(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value) == f"{PATH} {message}"


def test_log_level_is_an_enum() -> None:
    assert parse(GOOD.replace("[server]", '[server]\nlog_level = "debug"')).log_level \
        is LogLevel.DEBUG


def test_every_key_the_example_documents_is_in_the_schema() -> None:
    example = Path(__file__).parents[2] / "config" / "server.example.toml"
    text = "\n".join(re.sub(r"^# ?(?=\[\[?[a-z.]+\]\]?$|[a-z_]+ = )", "", line)
                     for line in example.read_text().splitlines())
    s = parse_server_settings(tomllib.loads(text), example)
    assert s.tls_key is not None and len(s.issuers) == 2 and s.radicale == {
        "logging": {"bad_put_request_content": "True"}}
