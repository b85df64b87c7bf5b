"""Running the server in the foreground: a threading WSGI server, stopped by SIGTERM/SIGINT.

With `tls_certificate`/`tls_key` it speaks HTTPS itself: each connection's TLS handshake runs
in its own request thread (a slow client never holds up the others), and SIGHUP re-reads the
certificate files (renewals) without a restart.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
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


TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to finish the handshake


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request; closing waits for the requests in flight (HTTP/1.0: short)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(TLS_HANDSHAKE_TIMEOUT)
        try:
            secure = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            # Plain HTTP, scanners, clients that do not trust the certificate: not our error.
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            secure.settimeout(None)
            super().finish_request(secure, client_address)
        finally:
            self.shutdown_request(secure)  # a FIN, as for plain HTTP: clients see the close


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """Access lines go to our logger at debug level: Radicale already logs every request."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def get_stderr(self) -> Any:
        return sys.stderr

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        if getattr(self.server, "tls", None) is not None:
            environ["HTTPS"] = "on"  # wsgiref then sets wsgi.url_scheme to https
        return environ


def radicale_log_level(level: str, verbose: int) -> int:
    """Radicale's own logging (every request, its whole configuration at start-up) stays at
    warning unless -v (info) or -vv (debug, with request bodies), and never below the
    server's own level."""
    chosen = logging.DEBUG if verbose else getattr(logging, level.upper())
    return max(chosen, (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)])


def tls_context(settings: ServerSettings, context: ssl.SSLContext | None = None
                ) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or newer), or None for plain HTTP; `context` is
    loaded again in place (SIGHUP), so new connections get a renewed certificate."""
    if settings.tls_certificate is None or settings.tls_key is None:
        return None
    if context is None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{settings.path} [server] tls_certificate/tls_key: cannot load "
            f"{settings.tls_certificate} with {settings.tls_key}: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    return context


def make_server(settings: ServerSettings, app: ServerApp) -> _Server:
    server_class = _Server6 if ":" in settings.host else _Server
    tls = tls_context(settings)
    try:
        server = server_class((settings.host, settings.port), _Handler)
    except OSError as exc:
        raise ConfigError(
            f"{settings.path} [server] listen: cannot listen on "
            f"{settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    server.tls = tls
    server.set_app(app)
    return server


def summary(settings: ServerSettings, host: str, port: int, app: ServerApp) -> str:
    """The one start-up line: where it listens, where data lives, whom it trusts, how many."""
    accounts, devices, apps = app.store.counts()
    shown = f"[{host}]" if ":" in host else host
    issuers = ", ".join(i.issuer for i in settings.issuers) or "none (app passwords only)"
    proxy = ", behind a proxy" if settings.behind_proxy else ""
    return (
        f"davsync server: listening on {settings.scheme}://{shown}:{port}/{proxy} "
        f"(storage {settings.data_dir}; issuers: {issuers}; {accounts} accounts, "
        f"{devices} devices, {apps} app passwords)"
    )


def _reload_tls(server: _Server, settings: ServerSettings) -> None:
    if server.tls is None:
        log.info("received SIGHUP; no TLS certificate to reload")
        return
    try:
        tls_context(settings, server.tls)
    except ConfigError as exc:
        log.error("%s; still serving the previous certificate", exc)
        return
    log.info("reloaded the TLS certificate %s", settings.tls_certificate)


def run(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and close the store."""
    stopping = threading.Event()
    serving: list[_Server] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    def reload(signum: int, frame: FrameType | None) -> None:
        if serving:  # before that, the certificate is still to be loaded: nothing to reload
            _reload_tls(serving[0], settings)

    # The handlers go in before the socket listens: a client may connect (and a supervisor
    # send SIGHUP) from that moment, and SIGHUP's default action would end the process.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    try:
        app = ServerApp(settings)
        server = make_server(settings, app)
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    serving.append(server)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="wsgi", daemon=True
    )
    thread.start()
    print(summary(settings, host, port, app), file=sys.stderr, flush=True)
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
