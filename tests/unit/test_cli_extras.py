"""A client-only install (no `davsync[server]` extra) says what to install, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from davsync.cli import main


@pytest.mark.parametrize("args", [["server"], ["server", "accounts"], ["demo"]])
def test_server_commands_without_radicale_exit_2_naming_the_extra(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "radicale", None)  # as if it were not installed
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "install davsync[server]" in result.output
    assert result.output.count("\n") == 1  # one message, once


def test_the_message_is_the_one_readme_quotes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "radicale", None)
    result = CliRunner().invoke(main, ["server", "accounts"])
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"    {result.output}" in readme


def test_demo_is_a_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert " demo " in result.output
