"""`davsync example-config` prints the shipped examples, so every hint that sends a user to an
example works from an installed wheel, not only from a checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from davsync.cli import main
from davsync.config import load_config
from davsync.server.settings import parse_server_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("args", "name"), [
    ([], "davsync.example.toml"), (["--server"], "server.example.toml"),
])
def test_prints_the_shipped_example_byte_for_byte(args: list[str], name: str) -> None:
    result = CliRunner().invoke(main, ["example-config", *args])
    assert result.exit_code == 0
    assert result.output == (ROOT / "davsync" / "examples" / name).read_text(encoding="utf-8")


def test_the_printed_client_example_is_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CliRunner().invoke(main, ["example-config"]).output, encoding="utf-8")
    config = load_config(path)
    assert config.server.url


def test_the_printed_server_example_is_valid(tmp_path: Path) -> None:
    text = CliRunner().invoke(main, ["example-config", "--server"]).output
    path = tmp_path / "server.toml"
    settings = parse_server_settings(tomllib.loads(text), path)
    assert settings is not None


def test_a_missing_config_names_the_command_that_prints_an_example(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.toml"), "sync"])
    assert result.exit_code == 2
    assert "config file not found (`davsync example-config` prints a commented example)" in (
        result.output)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "davsync example-config > ~/.config/davsync/config.toml" in readme
