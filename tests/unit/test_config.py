"""The shipped example config parses, and config errors name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from davsync.config import load_config
from davsync.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "davsync.example.toml")
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
