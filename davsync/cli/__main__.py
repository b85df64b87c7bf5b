"""`python -m davsync.cli`: the console script, for tests and the demo."""

from davsync.cli import entry

entry()
