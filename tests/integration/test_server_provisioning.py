"""Provisioning against a real `davsync server` subprocess and the dev issuer.

Each test uses its own OIDC subject (`new_subject()`), so accounts never overlap.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from davsync.server.devissuer import DevIssuer
from tests.fixtures.davsync_server import (
    DavsyncServer,
    Provisioned,
    new_subject,
    start_davsync_server,
    stop_davsync_server,
)
from tests.unit.test_server_assertions import hs256, unsigned

PASSWORDS: list[str] = []  # every password handed out here; the log test looks for them


def propfind(server: DavsyncServer, auth: tuple[str, str] | None, path: str = "") -> int:
    response = httpx.request("PROPFIND", server.url + path, headers={"Depth": "0"}, auth=auth,
                             timeout=30)
    return response.status_code


def provision(server: DavsyncServer, sub: str, device_id: str = "device-1") -> Provisioned:
    device = server.provision(sub, device_id=device_id)
    PASSWORDS.append(device.password)
    return device


def post(server: DavsyncServer, body: Any, method: str = "POST") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.request(method, server.provision_url, content=content, timeout=30,
                         headers={"Content-Type": "application/json"})


def test_provisioned_credentials_work_for_dav(davsync_server: DavsyncServer) -> None:
    device = provision(davsync_server, new_subject())
    assert device.dav_url == davsync_server.url
    assert device.device_id == "device-1"
    assert propfind(davsync_server, device.auth) == 207
    assert propfind(davsync_server, device.auth, device.username + "/") == 207
    assert propfind(davsync_server, None) == 401
    assert propfind(davsync_server, (device.username, device.password + "x")) == 401


def test_answer_has_every_protocol_field(davsync_server: DavsyncServer) -> None:
    response = post(davsync_server, {"assertion": davsync_server.mint(new_subject()),
                                     "device_id": "abc", "device_name": "Phone"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    PASSWORDS.append(data["password"])
    # `mode` only when the admin set one (`davsync server mode`): it overrides [daemon] mode
    assert set(data) == {"username", "password", "dav_url", "device_id"}
    assert data["device_id"] == "abc"
    assert len(data["password"]) >= 43  # token_urlsafe(32)


def test_same_subject_same_username_second_device_own_password(
    davsync_server: DavsyncServer,
) -> None:
    sub = new_subject()
    laptop = provision(davsync_server, sub, "laptop")
    phone = provision(davsync_server, sub, "phone")
    assert laptop.username == phone.username
    assert laptop.password != phone.password
    assert propfind(davsync_server, laptop.auth) == 207
    assert propfind(davsync_server, phone.auth) == 207
    names = {d["device_id"] for d in davsync_server.devices(laptop.username)}
    assert names == {"laptop", "phone"}


def test_reprovisioning_a_device_revokes_its_old_password(davsync_server: DavsyncServer) -> None:
    sub = new_subject()
    old = provision(davsync_server, sub)
    assert propfind(davsync_server, old.auth) == 207  # cached now
    new = provision(davsync_server, sub)
    assert propfind(davsync_server, old.auth) == 401
    assert propfind(davsync_server, new.auth) == 207


def test_revoked_device_is_refused_on_the_next_request(davsync_server: DavsyncServer) -> None:
    sub = new_subject()
    device = provision(davsync_server, sub, "laptop")
    other = provision(davsync_server, sub, "phone")
    assert propfind(davsync_server, device.auth) == 207  # now in the server's login cache
    davsync_server.revoke(device.username, device.device_id)
    assert propfind(davsync_server, device.auth) == 401
    assert propfind(davsync_server, other.auth) == 207
    listed = {d["device_id"]: d for d in davsync_server.devices(device.username)}
    assert listed["laptop"]["revoked"] is not None and listed["phone"]["revoked"] is None
    assert listed["phone"]["last_used"] is not None


def test_revoke_cli_names_unknown_device(davsync_server: DavsyncServer) -> None:
    device = provision(davsync_server, new_subject())
    result = davsync_server.cli("revoke", device.username, "nope", check=False)
    assert result.returncode == 1
    assert "no active device 'nope'" in result.stderr


def test_devices_table(davsync_server: DavsyncServer) -> None:
    device = provision(davsync_server, new_subject(), "kitchen-tablet")
    lines = davsync_server.cli("devices", device.username).stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "NAME", "CREATED", "LAST", "USED", "REVOKED"]
    assert lines[1].startswith("kitchen-tablet  Test device")


def test_device_revokes_itself_with_its_credentials(davsync_server: DavsyncServer) -> None:
    device = provision(davsync_server, new_subject())
    assert propfind(davsync_server, device.auth) == 207
    refused = httpx.post(davsync_server.revoke_url, auth=(device.username, "wrong"), timeout=30)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_credentials"
    assert refused.headers["www-authenticate"].startswith("Basic")
    response = httpx.post(davsync_server.revoke_url, auth=device.auth, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"username": device.username, "device_id": device.device_id,
                               "revoked": True}
    assert propfind(davsync_server, device.auth) == 401
    again = httpx.post(davsync_server.revoke_url, auth=device.auth, timeout=30)
    assert again.status_code == 401


def make_collection(server: DavsyncServer, device: Provisioned) -> str:
    url = f"{server.url}{device.username}/contacts/"
    body = (
        '<?xml version="1.0"?><mkcol xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
        "<set><prop><resourcetype><collection/><C:addressbook/></resourcetype></prop></set>"
        "</mkcol>"
    )
    assert httpx.request("MKCOL", url, content=body, auth=device.auth, timeout=30
                         ).status_code == 201
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x1\r\nFN:Ada\r\nN:;Ada;;;\r\nEND:VCARD\r\n"
    put = httpx.put(url + "x1.vcf", content=card, auth=device.auth, timeout=30,
                    headers={"Content-Type": "text/vcard"})
    assert put.status_code == 201
    return url


def test_delete_account_cli_removes_collections_and_credentials(
    davsync_server: DavsyncServer,
) -> None:
    device = provision(davsync_server, new_subject())
    make_collection(davsync_server, device)
    folder = davsync_server.collections_dir / "collection-root" / device.username
    assert (folder / "contacts").is_dir()
    davsync_server.delete_account(device.username)
    assert not folder.exists()
    assert propfind(davsync_server, device.auth) == 401
    result = davsync_server.cli("devices", device.username, check=False)
    assert result.returncode == 1 and "no account" in result.stderr


def test_delete_account_over_http(davsync_server: DavsyncServer) -> None:
    sub = new_subject()
    device = provision(davsync_server, sub)
    make_collection(davsync_server, device)
    response = post(davsync_server, {"assertion": davsync_server.mint(sub)}, method="DELETE")
    assert response.status_code == 200
    assert response.json() == {"username": device.username, "deleted": True}
    assert not (davsync_server.collections_dir / "collection-root" / device.username).exists()
    assert propfind(davsync_server, device.auth) == 401
    again = post(davsync_server, {"assertion": davsync_server.mint(sub)}, method="DELETE")
    assert again.status_code == 404 and again.json()["error"] == "no_account"


def body_for(server: DavsyncServer, token: str) -> dict[str, str]:
    return {"assertion": token, "device_id": "dev", "device_name": "Bad"}


def claims(server: DavsyncServer, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": server.issuer.url, "sub": "mallory", "aud": server.client_id,
            "iat": now, "exp": now + 300, **over}


BAD_ASSERTIONS: dict[str, tuple[Callable[[DavsyncServer], str], str]] = {
    "wrong signature": (
        lambda s: s.mint("mallory", key=rsa.generate_private_key(public_exponent=65537,
                                                                 key_size=2048)),
        "bad_signature",
    ),
    "wrong audience": (lambda s: s.mint("mallory", aud="other-client"), "wrong_audience"),
    "expired": (lambda s: s.mint("mallory", exp=int(time.time()) - 300),
                "expired"),
    "not yet valid": (lambda s: s.mint("mallory", nbf=int(time.time()) + 600),
                      "not_yet_valid"),
    "unknown issuer": (lambda s: s.mint("mallory", iss="http://127.0.0.1:1"),
                       "untrusted_issuer"),
    "alg none": (lambda s: unsigned(claims(s)), "unsupported_alg"),
    "HS256 with public PEM": (
        lambda s: hs256(claims(s), s.issuer.public_pem(), s.issuer.kid), "unsupported_alg"
    ),
    "HS256 with public JWK": (
        lambda s: hs256(claims(s), json.dumps(s.issuer.public_jwk()).encode(), s.issuer.kid),
        "unsupported_alg",
    ),
    "garbage": (lambda s: "abc.def.ghi", "invalid_assertion"),
}


@pytest.mark.parametrize("case", list(BAD_ASSERTIONS))
def test_bad_assertions_are_refused(davsync_server: DavsyncServer, case: str) -> None:
    make, code = BAD_ASSERTIONS[case]
    response = post(davsync_server, body_for(davsync_server, make(davsync_server)))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == code
    assert response.json()["error_description"]


def test_unknown_kid_is_refused_after_a_jwks_refresh(davsync_server: DavsyncServer) -> None:
    provision(davsync_server, new_subject())  # keys are loaded
    fetches = davsync_server.issuer.jwks_fetches
    token = davsync_server.mint("mallory", kid="not-in-the-jwks")
    response = post(davsync_server, body_for(davsync_server, token))
    assert response.status_code == 401
    assert response.json()["error"] == "unknown_key"
    assert davsync_server.issuer.jwks_fetches == fetches + 1


def test_rotated_issuer_key_is_picked_up(davsync_server: DavsyncServer) -> None:
    issuer = davsync_server.issuer
    provision(davsync_server, new_subject())
    old_kid = issuer.kid
    issuer.rotate()
    try:
        provision(davsync_server, new_subject())
    finally:
        issuer.kid = old_kid


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", {"device_id": "abc"}, {"assertion": "x"},
     {"assertion": "x", "device_id": "bad id"}, b""],
)
def test_malformed_requests_are_400(davsync_server: DavsyncServer, body: Any) -> None:
    response = post(davsync_server, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def test_wrong_method_is_405(davsync_server: DavsyncServer) -> None:
    response = httpx.get(davsync_server.provision_url, timeout=30)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, DELETE"


def test_not_allowed_subject_is_403(
    tmp_path_factory: pytest.TempPathFactory, dev_issuer: DevIssuer
) -> None:
    server = start_davsync_server(tmp_path_factory.mktemp("closed"), dev_issuer,
                                  issuer_options={"allowed_email_domains": ["example.org"]})
    try:
        outsider = server.mint("x", email="x@evil.org", email_verified=True)
        response = post(server, body_for(server, outsider))
        assert response.status_code == 403 and response.json()["error"] == "not_allowed"
        unverified = server.mint("y", email="y@example.org", email_verified=False)
        assert post(server, body_for(server, unverified)).status_code == 403
        member = server.mint("z", email="z@example.org", email_verified=True)
        response = post(server, body_for(server, member))
        assert response.status_code == 200
        PASSWORDS.append(response.json()["password"])
    finally:
        stop_davsync_server(server)


def test_store_never_holds_a_plaintext_password(davsync_server: DavsyncServer) -> None:
    provision(davsync_server, new_subject())
    raw = b"".join(p.read_bytes() for p in davsync_server.data_dir.glob("credentials.sqlite3*"))
    assert b"$argon2id$" in raw
    for password in PASSWORDS:
        assert password.encode() not in raw


def test_passwords_never_appear_in_the_server_log(davsync_server: DavsyncServer) -> None:
    device = provision(davsync_server, new_subject())
    assert propfind(davsync_server, device.auth) == 207
    assert propfind(davsync_server, (device.username, device.password + "x")) == 401
    httpx.post(davsync_server.revoke_url, auth=device.auth, timeout=30)
    log = davsync_server.log_text()
    assert device.username in log  # the log is real and verbose (-vv)
    for password in PASSWORDS:
        assert password not in log
        for auth in (f"{device.username}:{password}", f"{device.username}:{password}x"):
            assert base64.b64encode(auth.encode()).decode() not in log


def app_password_request(server: DavsyncServer, body: Any) -> httpx.Response:
    return httpx.post(server.url + ".well-known/davsync/app-password", json=body, timeout=30)


def test_self_service_app_password(davsync_server: DavsyncServer) -> None:
    sub = new_subject()
    response = app_password_request(davsync_server, {"assertion": davsync_server.mint(sub)})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    app = response.json()
    PASSWORDS.append(app["password"])
    assert set(app) == {"username", "password", "dav_url", "id", "label"}
    assert app["label"] == "app password" and app["dav_url"] == davsync_server.url
    assert propfind(davsync_server, (app["username"], app["password"])) == 207
    listed = {d["device_id"]: d for d in davsync_server.devices(app["username"])}
    assert listed[app["id"]]["kind"] == "app"
    assert httpx.get(davsync_server.url + ".well-known/davsync/app-password",
                     timeout=30).status_code == 405
    bad = app_password_request(davsync_server,
                               {"assertion": davsync_server.mint(sub), "label": "x\ny"})
    assert bad.status_code == 400 and "'label'" in bad.json()["error_description"]
    forged = app_password_request(davsync_server, {"assertion": "abc.def.ghi"})
    assert forged.status_code == 401

    davsync_server.cli("block", app["username"])
    blocked = app_password_request(davsync_server, {"assertion": davsync_server.mint(sub)})
    assert blocked.status_code == 403 and blocked.json()["error"] == "account_blocked"
    assert propfind(davsync_server, (app["username"], app["password"])) == 401
    refused = post(davsync_server, body_for(davsync_server, davsync_server.mint(sub)))
    assert refused.status_code == 403 and refused.json()["error"] == "account_blocked"
