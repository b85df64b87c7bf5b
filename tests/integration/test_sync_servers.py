"""The servers people run, and how they misbehave: real Radicale/Xandikos, some behind a
loopback proxy (`tests.fixtures.faultproxy`) that makes them misbehave the way others do."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path

from davsync.core.kinds import Kind
from tests.fixtures.faultproxy import ProxyReply, ProxyRequest, fault_proxy
from tests.integration.test_sync_radicale import Account, Device, server_items


@dataclass
class Proxied:
    """`account` reached through a proxy at `url`."""

    account: Account
    url: str

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def password(self) -> str:
        return self.account.password

    def home(self, kind: Kind) -> str:
        return self.url + self.account.home(kind)[len(self.account.url):]


def write_cards(device: Device, count: int, prefix: str = "card") -> None:
    for i in range(count):
        (device.contacts / f"{prefix}{i}.vcf").write_text(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{prefix}-{i}\r\nFN:Person {i}\r\nEND:VCARD\r\n")


def test_423_locked_is_retried_and_narrows_the_writes_in_flight(
    tmp_path: Path, xandikos_account: Account
) -> None:
    """Xandikos answers 423 when writes collide on its git lock; here the proxy makes the first
    three PUTs collide for certain."""
    refused = itertools.count()
    lock = threading.Lock()

    def locked(request: ProxyRequest) -> ProxyReply | None:
        if request.method == "PUT":
            with lock:
                if next(refused) < 3:
                    return ProxyReply(423, {"content-type": "text/plain"}, b"Locked")
        return None

    with fault_proxy(xandikos_account.url, before=locked) as proxy:
        device = Device(tmp_path / "d", Proxied(xandikos_account, proxy.url))
        write_cards(device, 12)
        got = device.sync("--only", "contacts")
        assert got["exit"] == 0, got
        assert got["collections"]["contacts"]["uploaded"] == 12
        assert sum(1 for method, _ in proxy.seen if method == "PUT") == 12 + 3
    assert set(server_items(xandikos_account, "contacts")) == {f"card-{i}" for i in range(12)}
