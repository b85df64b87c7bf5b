"""Is the network metered? Asked of NetworkManager (nmcli); the parsing is pure and tested."""

from __future__ import annotations

import logging
import shutil
import subprocess

log = logging.getLogger(__name__)


def parse_nmcli_metered(output: str) -> bool:
    """True if any device reports `GENERAL.METERED:yes` (or `yes (guessed)`).

    `nmcli -t -f GENERAL.METERED dev show` prints one such line per device; "unknown" (devices
    that are down) and "no" do not make the connection metered.
    """
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "GENERAL.METERED" and value.strip().lower().startswith("yes"):
            return True
    return False


class MeteredCheck:
    """Asks nmcli each time; without NetworkManager the network is unmetered (logged once)."""

    def __init__(self) -> None:
        self._warned = False

    def _unknown(self, why: str) -> bool:
        if not self._warned:
            log.warning("unmetered_only: %s; treating the network as unmetered", why)
            self._warned = True
        return False

    def __call__(self) -> bool:
        if shutil.which("nmcli") is None:
            return self._unknown("NetworkManager (nmcli) is not installed")
        try:
            proc = subprocess.run(["nmcli", "-t", "-f", "GENERAL.METERED", "dev", "show"],
                                  capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return self._unknown(f"nmcli failed ({exc})")
        if proc.returncode != 0:
            return self._unknown(f"nmcli exited with status {proc.returncode}")
        return parse_nmcli_metered(proc.stdout)
