"""A plain Radicale in a subprocess on a free loopback port, with plain-text htpasswd accounts.

For `make demo`, the test fixtures and the benchmarks; never for real data.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from davsync.devtools.net import free_port, stop_process, wait_listening


@dataclass
class LocalRadicale:
    url: str
    port: int
    htpasswd: Path
    storage: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def add_user(self, user: str, password: str) -> None:
        with self.htpasswd.open("a", encoding="utf-8") as fh:
            fh.write(f"{user}:{password}\n")

    def stop(self) -> None:
        stop_process(self.proc)


def start_radicale(
    root: Path, *, log_level: str = "warning", max_content_length: int | None = None,
    tls: tuple[Path, Path] | None = None,
) -> LocalRadicale:
    """`log_level = "info"` logs one line per request (the benchmark counts them there);
    `tls` = (certificate, key) PEM files serves https instead of http."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    htpasswd = root / "htpasswd"
    htpasswd.touch()
    storage = root / "collections"
    config = root / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        + (f"max_content_length = {max_content_length}\n" if max_content_length else "")
        + (f"ssl = True\ncertificate = {tls[0]}\nkey = {tls[1]}\n" if tls else "")
        + f"[auth]\ntype = htpasswd\nhtpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = plain\ndelay = 0\n"
        f"[rights]\ntype = owner_only\n[storage]\nfilesystem_folder = {storage}\n"
        f"[web]\ntype = none\n[logging]\nlevel = {log_level}\n",
        encoding="utf-8",
    )
    log = root / "radicale.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    wait_listening(port, proc=proc)
    scheme = "https" if tls else "http"
    return LocalRadicale(f"{scheme}://127.0.0.1:{port}/", port, htpasswd, storage, log, proc)
