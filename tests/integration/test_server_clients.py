"""Standard CardDAV/CalDAV clients against a real `davsync server`, with app passwords.

The `caldav` library and vdirsyncer stand in for DAVx5 and Thunderbird: they know nothing of
davsync, discover the collections themselves (well-known URL, current-user-principal, home
sets), then create, sync and delete.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import caldav
import httpx
import pytest
from caldav.lib.error import AuthorizationError

from tests.fixtures.davsync_server import AppPassword, DavsyncServer, new_subject

VDIRSYNCER = str(Path(sys.executable).with_name("vdirsyncer"))


def local_user() -> str:
    return "u" + uuid.uuid4().hex[:12]


def event(uid: str, summary: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\n"
        f"DTEND:20240102T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def vcard(uid: str, name: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"


def client(server: DavsyncServer, app: AppPassword, url: str | None = None) -> caldav.DAVClient:
    return caldav.DAVClient(url=url or server.url, username=app.username, password=app.password,
                            ssl_verify_cert=str(server.ca) if server.ca else True)


def test_well_known_urls_lead_to_the_root(davsync_server: DavsyncServer) -> None:
    for name in ("caldav", "carddav"):
        response = httpx.request("PROPFIND", f"{davsync_server.url}.well-known/{name}",
                                 timeout=30)
        assert response.status_code in (301, 302, 307, 308)
        assert response.headers["location"] in ("/", davsync_server.url)


def caldav_round_trip(server: DavsyncServer, app: AppPassword) -> None:
    """Discovery, create, sync by token from a second client, delete; then revoke: 401."""
    with client(server, app, server.url + ".well-known/caldav") as writer:
        principal = writer.principal()
        assert principal.url.path.rstrip("/") == "/" + app.username
        calendar = principal.make_calendar(name="Work", cal_id="work")
        calendar.save_event(event("e1", "Planning"))
    with client(server, app) as reader, client(server, app) as writer:
        found = {c.url.path for c in reader.principal().calendars()}
        assert f"/{app.username}/work/" in found
        mirror = reader.calendar(url=f"{server.url}{app.username}/work/")
        synced = mirror.objects_by_sync_token(load_objects=True)
        assert [o.icalendar_component["uid"] for o in synced] == ["e1"]
        writer_calendar = writer.calendar(url=f"{server.url}{app.username}/work/")
        writer_calendar.save_event(event("e2", "Review"))
        writer_calendar.event_by_uid("e1").delete()
        updated, deleted = synced.sync()
        assert [o.icalendar_component["uid"] for o in updated] == ["e2"]
        assert [o.url.path.rsplit("/", 1)[1] for o in deleted] == ["e1.ics"]
        server.cli("revoke", app.username, app.id)
        with pytest.raises(AuthorizationError):
            reader.principal().calendars()  # the password was in the login cache: 401 at once


def test_caldav_library_with_an_admin_made_app_password(davsync_server: DavsyncServer) -> None:
    app = davsync_server.app_password(local_user(), "Pixel DAVx5", create=True)
    assert app.dav_url == davsync_server.url and app.id.startswith("app-")
    caldav_round_trip(davsync_server, app)
    listed = {d["device_id"]: d for d in davsync_server.devices(app.username)}
    assert listed[app.id]["kind"] == "app" and listed[app.id]["name"] == "Pixel DAVx5"
    assert listed[app.id]["revoked"] is not None and listed[app.id]["last_used"] is not None


def test_app_password_for_a_provisioned_account_sees_the_same_collections(
    davsync_server: DavsyncServer,
) -> None:
    device = davsync_server.provision(new_subject())
    app = davsync_server.app_password(device.username, "Thunderbird")
    with client(davsync_server, app) as dav:
        dav.principal().make_calendar(name="Home", cal_id="home")
    response = httpx.request("PROPFIND", f"{davsync_server.url}{device.username}/home/",
                             headers={"Depth": "0"}, auth=device.auth, timeout=30)
    assert response.status_code == 207
    davsync_server.revoke(device.username, device.device_id)
    with client(davsync_server, app) as dav:  # revoking the device leaves the app password
        assert dav.principal().calendars()


def vdirsyncer(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VDIRSYNCER, *args], input="y\n" * 4, capture_output=True, text=True, timeout=120,
        env={**os.environ, "VDIRSYNCER_CONFIG": str(config)}, check=False,
    )


def vdirsyncer_config(root: Path, server: DavsyncServer, app: AppPassword) -> Path:
    pairs = []
    for pair, kind, ext in (("contacts", "carddav", ".vcf"), ("calendars", "caldav", ".ics")):
        pairs.append(f"""
[pair {pair}]
a = "{pair}_local"
b = "{pair}_server"
collections = ["from a", "from b"]

[storage {pair}_local]
type = "filesystem"
path = "{root}/{pair}/"
fileext = "{ext}"

[storage {pair}_server]
type = "{kind}"
url = "{server.url}"
username = "{app.username}"
password = "{app.password}"
""")
    config = root / "config"
    config.write_text(f'[general]\nstatus_path = "{root}/status/"\n' + "".join(pairs),
                      encoding="utf-8")
    return config


def test_vdirsyncer_discovers_creates_syncs_and_deletes(
    davsync_server: DavsyncServer, tmp_path: Path
) -> None:
    app = davsync_server.app_password(local_user(), "vdirsyncer", create=True)
    book = tmp_path / "contacts" / "book"
    book.mkdir(parents=True)
    (book / "c1.vcf").write_text(vcard("c1", "Ada"), encoding="utf-8")
    work = tmp_path / "calendars" / "work"
    work.mkdir(parents=True)
    (work / "e1.ics").write_text(event("e1", "Planning"), encoding="utf-8")
    (work / "e2.ics").write_text(event("e2", "Review"), encoding="utf-8")  # not emptied later
    config = vdirsyncer_config(tmp_path, davsync_server, app)

    discovered = vdirsyncer(config, "discover")  # creates both collections on the server
    assert discovered.returncode == 0, discovered.stderr
    first = vdirsyncer(config, "sync")
    assert first.returncode == 0, first.stderr
    base = f"{davsync_server.url}{app.username}/"
    assert httpx.get(base + "book/c1.vcf", auth=app.auth, timeout=30).status_code == 200
    assert httpx.get(base + "work/e1.ics", auth=app.auth, timeout=30).status_code == 200

    put = httpx.put(base + "book/c2.vcf", content=vcard("c2", "Grace"), auth=app.auth,
                    headers={"Content-Type": "text/vcard"}, timeout=30)
    assert put.status_code == 201
    (work / "e1.ics").unlink()
    second = vdirsyncer(config, "sync")
    assert second.returncode == 0, second.stderr
    assert "Grace" in "".join(p.read_text() for p in book.iterdir())
    assert httpx.get(base + "work/e1.ics", auth=app.auth, timeout=30).status_code == 404
    assert httpx.get(base + "work/e2.ics", auth=app.auth, timeout=30).status_code == 200

    davsync_server.revoke(app.username, app.id)
    refused = vdirsyncer(config, "sync")
    assert refused.returncode != 0
    assert "401" in refused.stderr or "Unauthorized" in refused.stderr
