"""What every CLI command gets: the config path, loaded lazily, and output options."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import click

from davsync.config import Config, load_config
from davsync.errors import ConfigError


@dataclass
class AppContext:
    config_path: Path | None
    verbose: int = 0
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        """Load the client config on first use, so `davsync server ...` never needs it."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(AppContext)


def need_server_extra(command: str) -> None:
    """Refuse a command that runs Radicale when the optional extra is not installed.

    A client-only install (`pip install davsync`) leaves the server out; saying so beats an
    ImportError traceback.
    """
    try:
        found = importlib.util.find_spec("radicale") is not None
    except ValueError:  # set to None in sys.modules: importing it is blocked
        found = False
    if not found:
        raise ConfigError(f"`{command}` needs the Radicale server, which is not installed: "
                          "install davsync[server] (pip install 'davsync[server]')")
