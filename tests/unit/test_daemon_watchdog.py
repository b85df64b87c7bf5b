"""When the daemon pings systemd's watchdog: while its sync worker is idle or making
progress, never for a run stuck without a request (no server is contacted here)."""

from __future__ import annotations

from pathlib import Path

from davsync.app.daemon import Daemon
from davsync.app.heartbeat import Heartbeat, hung_bound
from davsync.app.notify import Notifier
from davsync.config import load_config


def test_idle_is_alive_whatever_the_time() -> None:
    beat = Heartbeat(bound=100.0)
    assert beat.alive(0.0, 0) and beat.alive(10_000.0, 0)


def test_a_run_is_alive_while_it_makes_requests_and_hung_once_it_stops() -> None:
    beat = Heartbeat(bound=100.0)
    beat.started(1000.0)
    assert beat.alive(1099.0, 0)  # started within the bound
    assert not beat.alive(1100.0, 0)  # no request for the whole bound
    assert beat.alive(1150.0, 1)  # a request: progress again
    assert beat.alive(1249.0, 1)
    assert not beat.alive(1250.0, 1)
    beat.finished()
    assert beat.alive(5000.0, 1)


def test_a_run_started_after_old_requests_counts_from_its_start() -> None:
    beat = Heartbeat(bound=100.0)
    assert beat.alive(0.0, 7)  # requests of an earlier run
    beat.started(1000.0)
    assert beat.alive(1050.0, 7)


class Pings(Notifier):
    def __init__(self) -> None:
        super().__init__(None)
        self.pings = 0

    def watchdog(self) -> bool:
        self.pings += 1
        return True


def _daemon(tmp_path: Path) -> Daemon:
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\nurl = "http://127.0.0.1:9/"\nusername = "u"\npassword = "p"\n'
        'request_timeout = 10\nmax_retries = 1\n'
        f'[state]\ndir = "{tmp_path / "s"}"\n', encoding="utf-8")
    config.chmod(0o600)
    return Daemon(load_config(config), Pings())


def test_the_bound_is_every_retry_of_a_request_timing_out_and_once_more(
    tmp_path: Path
) -> None:
    daemon = _daemon(tmp_path)
    assert hung_bound(daemon.config) == 30.0
    assert daemon.heartbeat.bound == 30.0


def test_a_hung_run_stops_the_pings(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    pings = daemon.notifier
    assert isinstance(pings, Pings)
    daemon.watchdog.ping()
    assert pings.pings == 1
    daemon.heartbeat.started(-1e9)  # a run that began long ago and made no request since
    daemon.watchdog.ping()
    daemon.watchdog.ping()
    assert pings.pings == 1
    daemon.heartbeat.finished()
    daemon.watchdog.ping()
    assert pings.pings == 2
