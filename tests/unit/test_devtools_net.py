"""The throw-away local servers' start-up helper."""

from __future__ import annotations

import subprocess
import sys

import pytest

from davsync.devtools.net import free_port, wait_listening


def test_a_server_that_never_listens_is_stopped_before_the_error() -> None:
    """Else it outlives its test: nobody holds it any more to stop it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError, match="nothing listening"):
            wait_listening(free_port(), timeout=0.3, proc=proc)
        assert proc.poll() is not None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
