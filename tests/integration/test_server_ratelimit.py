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
