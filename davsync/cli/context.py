"""What every CLI command gets: the config path, loaded lazily, and output options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from davsync.config import Config, load_config


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
