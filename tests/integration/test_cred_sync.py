"""A device revoked on the server re-provisions during `davsync sync`, and nothing is lost."""

from __future__ import annotations

import json
import re
from pathlib import Path

from davsync.credentials.store import load_device
from davsync.dav.basic_auth import BasicAuthenticator
from davsync.dav.client import DavClient
from davsync.dav.discovery import find_collection
from davsync.errors import EXIT_UNREACHABLE
from tests.fixtures.davsync_server import DavsyncServer
from tests.integration.test_cred_provision import Installation, install

__all__ = ["install"]  # the fixture, shared with the provisioning tests


def _vcard(uid: str, name: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"


def _with_contacts(inst: Installation, count: int) -> Path:
    contacts = inst.root / "contacts"
    contacts.mkdir()
    for i in range(count):
        (contacts / f"c{i}.vcf").write_text(_vcard(f"c{i}", f"Person {i}"), encoding="utf-8")
    text = inst.config.read_text(encoding="utf-8")
    text = text.replace("[state]", f'[device]\ncontacts = "{contacts}"\n\n[state]')
    inst.config.write_text(text, encoding="utf-8")
    return contacts


def _sync(inst: Installation) -> tuple[int, dict[str, object]]:
    result = inst.run("sync", "--json")
    return result.exit_code, json.loads(result.stdout.splitlines()[0])  # logs go to stderr


def _server_uids(inst: Installation) -> set[str]:
    """The UIDs in the server's addressbook, read with the device's current credentials."""
    creds = load_device(inst.store)
    assert creds is not None
    auth = BasicAuthenticator(creds.username, creds.password)
    with DavClient(creds.dav_url, auth) as client:
        collection = find_collection(client, "contacts", "contacts")
        fetched = list(collection.multiget(list(collection.list_etags())))
    uids = set()
    for item in fetched:
        assert item.data is not None, item.error
        uids |= set(re.findall(r"^UID:(\S+)", item.data.decode(), re.MULTILINE))
    return uids


def test_revoked_device_reprovisions_during_sync(
    install: Installation, davsync_server: DavsyncServer
) -> None:
    contacts = _with_contacts(install, 3)
    assert install.run("login").exit_code == 0
    code, first = _sync(install)
    assert code == 0, first
    old = load_device(install.store)
    assert old is not None
    davsync_server.revoke(old.username, old.device_id)
    (contacts / "c3.vcf").write_text(_vcard("c3", "Person 3"), encoding="utf-8")

    code, second = _sync(install)
    assert code == 0, second
    assert install.provisions() == 2  # the login and exactly one re-provisioning
    new = load_device(install.store)
    assert new is not None and new.password != old.password
    assert sorted(p.name for p in contacts.iterdir()) == [f"c{i}.vcf" for i in range(4)]
    assert _server_uids(install) == {"c0", "c1", "c2", "c3"}


def test_refused_reprovisioning_keeps_pending_work(
    install: Installation, davsync_server: DavsyncServer
) -> None:
    contacts = _with_contacts(install, 2)
    assert install.run("login").exit_code == 0
    assert _sync(install)[0] == 0
    old = load_device(install.store)
    assert old is not None
    davsync_server.revoke(old.username, old.device_id)
    (contacts / "c2.vcf").write_text(_vcard("c2", "Person 2"), encoding="utf-8")
    install.use_failing_command()

    code, refused = _sync(install)
    assert code == EXIT_UNREACHABLE
    assert "assertion_command" in str(refused)
    assert install.status()["state"] == "reprovision_failed"
    assert (contacts / "c2.vcf").exists()

    install.use_working_command()
    code, healed = _sync(install)
    assert code == 0, healed
    assert _server_uids(install) == {"c0", "c1", "c2"}
