"""Rate limits of a real server with small budgets: provisioning and failed DAV logins."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from davsync.server.devissuer import DevIssuer
from tests.fixtures.davsync_server import (
    DavsyncServer,
    new_subject,
    start_davsync_server,
    stop_davsync_server,
)


@pytest.fixture
def strict_server(
    tmp_path_factory: pytest.TempPathFactory, dev_issuer: DevIssuer
) -> Iterator[DavsyncServer]:
    server = start_davsync_server(
        tmp_path_factory.mktemp("strict"), dev_issuer,
        provision_per_minute=3, failed_logins_per_minute=3,
    )
    try:
        yield server
    finally:
        stop_davsync_server(server)


def propfind(server: DavsyncServer, auth: tuple[str, str]) -> httpx.Response:
    return httpx.request("PROPFIND", server.url, headers={"Depth": "0"}, auth=auth, timeout=30)


def test_limits(strict_server: DavsyncServer) -> None:
    device = strict_server.provision(new_subject())  # provisioning token 1 of 3
    assert propfind(strict_server, device.auth).status_code == 207
    for _ in range(3):
        assert propfind(strict_server, (device.username, "guess")).status_code == 401
    blocked = propfind(strict_server, device.auth)  # even the right password, for a while
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    revoke = httpx.post(strict_server.revoke_url, auth=device.auth, timeout=30)
    assert revoke.status_code == 429

    for _ in range(2):  # provisioning tokens 2 and 3, even for malformed requests
        assert httpx.post(strict_server.provision_url, content=b"{}", timeout=30
                          ).status_code == 400
    limited = httpx.post(strict_server.provision_url, content=b"{}", timeout=30)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1


@pytest.fixture
def account_limited(
    tmp_path_factory: pytest.TempPathFactory, dev_issuer: DevIssuer
) -> Iterator[DavsyncServer]:
    server = start_davsync_server(
        tmp_path_factory.mktemp("per-account"), dev_issuer,
        failed_logins_per_minute=3, failed_logins_per_account_per_minute=3,
    )
    try:
        yield server
    finally:
        stop_davsync_server(server)


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z is loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_guessing_at_an_account_is_stopped_but_its_signed_in_devices_go_on(
    account_limited: DavsyncServer,
) -> None:
    sub = new_subject()
    laptop = account_limited.provision(sub, device_id="laptop")
    phone = account_limited.provision(sub, device_id="phone")
    other = account_limited.provision(new_subject())
    assert propfind(account_limited, laptop.auth).status_code == 207  # signed in (cached)
    statuses = []
    for n in range(10):  # each guess from another address: only the account limit applies
        with from_address(f"127.0.0.{10 + n}") as client:
            statuses.append(client.request("PROPFIND", account_limited.url,
                                           headers={"Depth": "0"},
                                           auth=(laptop.username, f"guess{n}")).status_code)
    assert statuses == [401] * 3 + [429] * 7
    assert propfind(account_limited, laptop.auth).status_code == 207
    assert propfind(account_limited, phone.auth).status_code == 429  # not checked recently
    assert propfind(account_limited, other.auth).status_code == 207
    assert account_limited.log_text().count(
        f"too many failed logins for account {laptop.username}") == 1


def test_guessing_from_one_address_does_not_stop_the_others(
    account_limited: DavsyncServer,
) -> None:
    device = account_limited.provision(new_subject())
    with from_address("127.0.0.2") as attacker, from_address("127.0.0.3") as neighbour:
        statuses = [attacker.request("PROPFIND", account_limited.url, headers={"Depth": "0"},
                                     auth=(f"user{n}", "guess")).status_code for n in range(6)]
        assert statuses == [401] * 3 + [429] * 3
        assert attacker.request("PROPFIND", account_limited.url, headers={"Depth": "0"},
                                auth=device.auth).status_code == 429
        assert neighbour.request("PROPFIND", account_limited.url, headers={"Depth": "0"},
                                 auth=device.auth).status_code == 207


def test_behind_a_proxy_the_forwarded_address_and_scheme_count(
    tmp_path_factory: pytest.TempPathFactory, dev_issuer: DevIssuer
) -> None:
    server = start_davsync_server(tmp_path_factory.mktemp("proxied"), dev_issuer,
                                  behind_proxy=True, failed_logins_per_minute=3)
    try:
        device = server.provision(new_subject())

        def via_proxy(client: str, auth: tuple[str, str]) -> int:
            headers = {"Depth": "0", "X-Forwarded-For": f"203.0.113.9, {client}"}
            return httpx.request("PROPFIND", server.url, headers=headers, auth=auth,
                                 timeout=30).status_code

        guesses = [via_proxy("198.51.100.1", (f"user{n}", "guess")) for n in range(4)]
        assert guesses == [401, 401, 401, 429]
        assert via_proxy("198.51.100.1", device.auth) == 429
        assert via_proxy("198.51.100.2", device.auth) == 207  # same proxy, another client
        answer = httpx.post(server.provision_url, timeout=30,
                            headers={"X-Forwarded-Proto": "https", "Host": "dav.example.org"},
                            json={"assertion": server.mint(new_subject()), "device_id": "d"})
        assert answer.json()["dav_url"] == "https://dav.example.org/"
    finally:
        stop_davsync_server(server)
