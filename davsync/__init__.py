"""davsync: contact/calendar sync over CardDAV/CalDAV and encrypted backup to S3."""

import sys

__version__ = "0.1.0"

# httpx (0.28) imports its own command-line client on `import httpx` whenever rich, pygments
# and click are installed (click is ours; rich comes with many tools): 40 ms of every run that
# talks to a server, two thirds of httpx's import, for a CLI davsync never calls. A None entry
# makes that one import fail, and httpx then defines the placeholder it has for a missing CLI
# (https://github.com/encode/httpx, __init__.py: `from ._main import main` under ImportError).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
