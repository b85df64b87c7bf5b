"""Provisioning against a real `davsync server`: credentials that work, revocation, deletion."""

from __future__ import annotations

import httpx

from tests.fixtures.davsync_server import DavsyncServer, new_subject

PROPFIND = {"Depth": "0"}


def propfind(server: DavsyncServer, auth: tuple[str, str] | None, path: str = "") -> int:
    response = httpx.request("PROPFIND", server.url + path, headers=PROPFIND, auth=auth,
                             timeout=30)
    return response.status_code


def test_provisioned_credentials_work_for_dav(davsync_server: DavsyncServer) -> None:
    device = davsync_server.provision(new_subject())
    assert device.dav_url == davsync_server.url
    assert device.device_id == "device-1"
    assert propfind(davsync_server, device.auth) == 207
    assert propfind(davsync_server, None) == 401
    assert propfind(davsync_server, (device.username, device.password + "x")) == 401


def test_revoked_device_is_refused_on_the_next_request(davsync_server: DavsyncServer) -> None:
    device = davsync_server.provision(new_subject())
    assert propfind(davsync_server, device.auth) == 207  # now in the server's login cache
    davsync_server.revoke(device.username, device.device_id)
    assert propfind(davsync_server, device.auth) == 401
