"""Running the server in the foreground: a threading WSGI server, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from davsync.errors import ConfigError
from davsync.server.app import ServerApp
from davsync.server.settings import ServerSettings

log = logging.getLogger(__name__)


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request; closing waits for the requests in flight (HTTP/1.0: short)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """Access lines go to our logger at debug level: Radicale already logs every request."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def get_stderr(self) -> Any:
        return sys.stderr


def configure_logging(level: str, verbose: int) -> None:
    """Timestamped lines on stderr; `-v` on the command line wins over `log_level`."""
    chosen = logging.DEBUG if verbose else getattr(logging, level.upper())
    logging.basicConfig(
        level=chosen, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # Radicale at debug logs whole request/response bodies; keep it one step quieter.
    logging.getLogger("radicale").setLevel(max(chosen, logging.INFO) if verbose < 2 else chosen)


def make_server(settings: ServerSettings, app: ServerApp) -> _Server:
    server_class = _Server6 if ":" in settings.host else _Server
    try:
        server = server_class((settings.host, settings.port), _Handler)
    except OSError as exc:
        raise ConfigError(
            f"{settings.path} [server] listen: cannot listen on "
            f"{settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    server.set_app(app)
    return server


def run(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and close the store."""
    app = ServerApp(settings)
    server = make_server(settings, app)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="wsgi", daemon=True
    )
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    log.info("davsync server listening on http://%s:%s/ (data in %s, %d trusted issuers)",
             shown, port, settings.data_dir, len(settings.issuers))
    print(f"davsync server: listening on http://{shown}:{port}/", file=sys.stderr, flush=True)
    try:
        while not stopping.wait(0.5):
            if not thread.is_alive():
                break
    finally:
        server.shutdown()
        server.server_close()
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("davsync server stopped")
