"""`collections = "all"` and lists against a real Radicale: every collection of the account
synced into its own folder, collections appearing on either side between runs, one vanishing
from the server, display names and colours both ways, hostile names from the server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.fixtures.proxy import LoopbackProxy, Reply, Request
from tests.fixtures.radicale import DavAccount
from tests.fixtures.xandikos import XandikosAccount

ROOT = Path(__file__).resolve().parents[2]
XML = {"Content-Type": "application/xml; charset=utf-8"}


def vcard(uid: str, name: str) -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            "END:VCARD\r\n").encode()


def event(uid: str, summary: str) -> bytes:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
            f"DURATION:PT1H\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


class Account:
    """The test's side of the Radicale account: collections made and filled over HTTP."""

    def __init__(self, dav: DavAccount) -> None:
        self.home = f"{dav.url}{dav.username}/"
        self.http = httpx.Client(auth=(dav.username, dav.password), timeout=30)

    def close(self) -> None:
        self.http.close()

    def addressbook(self, name: str, displayname: str) -> None:
        body = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
                '<D:collection/><C:addressbook/></D:resourcetype>'
                f'<D:displayname>{displayname}</D:displayname></D:prop></D:set></D:mkcol>')
        self._check(self.http.request("MKCOL", urljoin(self.home, name + "/"), headers=XML,
                                      content=body))

    def calendar(self, name: str, displayname: str, color: str | None = None) -> None:
        colour = "" if color is None else f"<A:calendar-color>{color}</A:calendar-color>"
        body = ('<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">'
                f'<D:set><D:prop><D:displayname>{displayname}</D:displayname>{colour}'
                '</D:prop></D:set></C:mkcalendar>')
        self._check(self.http.request("MKCALENDAR", urljoin(self.home, name + "/"),
                                      headers=XML, content=body))

    def put(self, collection: str, name: str, data: bytes) -> None:
        self._check(self.http.put(urljoin(self.home, f"{collection}/{name}"), content=data))

    def delete(self, collection: str) -> None:
        self._check(self.http.delete(urljoin(self.home, collection + "/")))

    def items(self, collection: str) -> set[str]:
        """The UIDs in a collection."""
        answer = self.http.request("PROPFIND", urljoin(self.home, collection + "/"),
                                   headers={"Depth": "1", **XML})
        self._check(answer)
        hrefs = re.findall(r"<(?:\w+:)?href>([^<]+\.(?:vcf|ics))</", answer.text)
        uids = set()
        for href in hrefs:
            text = self.http.get(urljoin(self.home, href)).text
            uids.update(re.findall(r"^UID:(.+?)\r?$", text, re.MULTILINE))
        return uids

    def prop(self, collection: str, tag: str, ns: str = "DAV:") -> str | None:
        body = (f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:X="{ns}"><D:prop>'
                f'<X:{tag}/></D:prop></D:propfind>')
        answer = self.http.request("PROPFIND", urljoin(self.home, collection + "/"),
                                   headers={"Depth": "0", **XML}, content=body)
        found = re.search(rf"<(?:\w+:)?{tag}[^>]*>([^<]*)</", answer.text)
        return found[1] if found else None

    @staticmethod
    def _check(answer: httpx.Response) -> None:
        assert answer.status_code // 100 == 2, (answer.status_code, answer.text[:300])


class Device:
    def __init__(self, root: Path, url: str, dav: DavAccount, contacts: str = '"all"',
                 calendars: str | None = '"all"', server: str = "") -> None:
        self.contacts, self.calendars = root / "contacts", root / "calendars"
        self.config = root / "config.toml"
        root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[server]\nurl = "{url}"\nusername = "{dav.username}"\n'
            f'password = "{dav.password}"\n{server}'
            f'[device]\ncontacts = {{ type = "vdir", path = "{self.contacts}", '
            f'collections = {contacts} }}\n'
            + ("" if calendars is None else f'calendars = {{ type = "vdir", path = '
               f'"{self.calendars}", collections = {calendars} }}\n')
            + f'[state]\ndir = "{root / "state"}"\n', encoding="utf-8")
        self.config.chmod(0o600)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "davsync.cli", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )

    def sync(self, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        proc = self.run("sync", "--json", *args)
        assert proc.returncode in (0, 1), proc.stderr
        return proc.returncode, json.loads(proc.stdout)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def account(dav_account: DavAccount) -> Account:
    acc = Account(dav_account)
    yield acc  # type: ignore[misc]
    acc.close()


def _fill(account: Account) -> None:
    """Three addressbooks and four calendars, one item or two each."""
    for name in ("family", "work", "friends"):
        account.addressbook(name, name.title())
        account.put(name, f"{name}-1.vcf", vcard(f"{name}-1", f"{name} one"))
    account.put("family", "family-2.vcf", vcard("family-2", "family two"))
    for name, color in (("personal", "#FF0000FF"), ("office", None), ("holidays", None),
                        ("sport", "#00FF00FF")):
        account.calendar(name, name.title(), color)
        account.put(name, f"{name}-1.ics", event(f"{name}-1", name))


def test_every_collection_syncs_and_new_ones_on_either_side_are_picked_up(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    _fill(account)
    device = Device(tmp_path / "d", dav_account.url, dav_account)
    code, out = device.sync()
    assert code == 0, out
    assert sorted(p.name for p in device.contacts.iterdir()) == ["family", "friends", "work"]
    assert sorted(p.name for p in device.calendars.iterdir()) == [
        "holidays", "office", "personal", "sport"]
    assert len([f for f in files(device.contacts / "family") if f.endswith(".vcf")]) == 2
    assert (device.contacts / "work" / "displayname").read_text() == "Work"
    assert (device.calendars / "sport" / "color").read_text() == "#00FF00FF"
    assert not (device.calendars / "office" / "color").exists()
    assert set(out["collections"]) == {"family", "work", "friends", "personal", "office",
                                       "holidays", "sport"}

    # between runs: an addressbook appears on the server, a calendar folder on the device
    account.addressbook("club", "Club")
    account.put("club", "club-1.vcf", vcard("club-1", "club one"))
    trips = device.calendars / "trips"
    trips.mkdir()
    (trips / "trip-1.ics").write_bytes(event("trip-1", "trip"))
    (trips / "displayname").write_text("Trips\n")
    (trips / "color").write_text("#0000FFFF")
    plain = device.calendars / "plain"  # no displayname file: named after its folder
    plain.mkdir()
    (plain / "plain-1.ics").write_bytes(event("plain-1", "plain"))
    code, out = device.sync()
    assert code == 0, out
    assert account.prop("plain", "displayname") == "plain"
    device.sync()
    assert (plain / "displayname").read_text() == "plain"  # not the server's default
    assert out["collections"]["club"]["downloaded"] == 1
    assert out["collections"]["trips"]["uploaded"] == 1
    assert [f for f in files(device.contacts / "club") if f.endswith(".vcf")]
    assert account.items("trips") == {"trip-1"}
    assert account.prop("trips", "displayname") == "Trips"
    assert account.prop("trips", "calendar-color", "http://apple.com/ns/ical/") == "#0000FFFF"

    # display names both ways: the side that changed wins
    (device.contacts / "family" / "displayname").write_text("Family & Co")
    body = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
            '<D:displayname>Day job</D:displayname></D:prop></D:set></D:propertyupdate>')
    account.http.request("PROPPATCH", urljoin(account.home, "office/"), headers=XML,
                         content=body)
    code, out = device.sync()
    assert code == 0, out
    assert account.prop("family", "displayname") == "Family &amp; Co"
    assert (device.calendars / "office" / "displayname").read_text() == "Day job"
    # both sides changed: the server's value is kept, the device's reported
    (device.calendars / "sport" / "displayname").write_text("Gym")
    body = body.replace("Day job", "Athletics")
    account.http.request("PROPPATCH", urljoin(account.home, "sport/"), headers=XML,
                         content=body)
    code, out = device.sync()
    assert code == 0 and all(r["uploaded"] + r["downloaded"] == 0
                             for r in out["collections"].values()), out
    where = device.calendars / "sport" / "displayname"
    assert out["collections"]["sport"]["conflict_items"] == [{
        "item": str(where), "outcome": "changed on both sides: the server's 'Athletics' is "
        "kept, the device's 'Gym' was replaced"}]
    assert where.read_text() == "Athletics"


def test_a_run_that_finds_nothing_changed_costs_the_listings_not_a_probe_per_collection(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    """The home set's listing carries each collection's getctag, and the home is the one
    the collections synced before live in: a run of seven collections of two kinds that
    finds nothing changed costs one listing per kind; a change in one collection is seen
    from the listing, and synced there alone."""
    _fill(account)
    device = Device(tmp_path / "d", dav_account.url, dav_account)
    assert device.sync()[0] == 0
    code, out = device.sync()
    assert code == 0 and len(out["collections"]) == 7, out
    assert out["http_requests"] == 2, out  # contacts' home and calendars' home, listed
    noop_requests = out["http_requests"]

    account.put("work", "work-2.vcf", vcard("work-2", "work two"))
    code, out = device.sync()
    assert code == 0, out
    assert {n: r["downloaded"] for n, r in out["collections"].items() if r["downloaded"]} \
        == {"work": 1}
    assert "work-2" in (device.contacts / "work" / "work-2.vcf").read_text()
    code, out = device.sync()
    assert code == 0 and out["http_requests"] == noop_requests, out


@pytest.mark.parametrize("before", ["gone", "another collection"])
def test_a_home_that_no_longer_lists_the_collections_is_found_again(
    tmp_path: Path, dav_account: DavAccount, account: Account, before: str,
) -> None:
    """The home is taken from where the synced collections live; where that place answers
    no listing (gone) or one without them (the account moved), the home is found again
    through the principal, nothing is reported gone, and the new place is remembered."""
    import sqlite3

    _fill(account)
    device = Device(tmp_path / "d", dav_account.url, dav_account)
    assert device.sync()[0] == 0
    (state,) = (tmp_path / "d" / "state").glob("*.sqlite")
    real = f"/{dav_account.username}/"
    old = (f"/{dav_account.username}-old/" if before == "gone"  # answers 403 on Radicale
           else f"{real}family/")  # an addressbook: its listing holds no collection
    with sqlite3.connect(state) as db:  # as if the account's home had been elsewhere
        db.execute("UPDATE collections SET url = replace(url, ?, ?)", (real, old))
    account.put("work", "work-2.vcf", vcard("work-2", "work two"))
    code, out = device.sync()
    assert code == 0 and len(out["collections"]) == 7, out
    assert out["collections"]["work"]["downloaded"] == 1
    assert all(not r["errors"] for r in out["collections"].values()), out
    with sqlite3.connect(state) as db:
        urls = [url for (url,) in db.execute("SELECT url FROM collections")]
    assert urls and all(real in url for url in urls)
    code, out = device.sync()
    assert code == 0 and out["http_requests"] == 2, out


def test_a_collection_removed_on_the_server_is_reported_and_its_folder_kept(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    account.addressbook("family", "Family")
    account.addressbook("work", "Work")
    for n in range(3):
        account.put("work", f"w{n}.vcf", vcard(f"w{n}", f"worker {n}"))
    device = Device(tmp_path / "d", dav_account.url, dav_account)
    assert device.sync()[0] == 0
    before = files(device.contacts / "work")
    account.delete("work")
    for _ in range(2):  # reported every run, never emptied
        code, out = device.sync()
        assert code == 1
        [error] = out["collections"]["work"]["errors"]
        assert error["item"] == "work"
        assert error["reason"] == (  # as README quotes it
            f"the server no longer has this addressbook; its device folder "
            f"{device.contacts / 'work'} is kept with every file and is not synced. Create the "
            "addressbook on the server again to sync it (its files are uploaded, nothing is "
            "deleted), rename the folder to upload it as a new addressbook, or move it out of "
            f"{device.contacts}")
        assert files(device.contacts / "work") == before
        assert account.items("family") == set()  # and it was not uploaded elsewhere
    status = device.run("status", "--json")
    assert "no longer has" in status.stdout
    # recreated (empty) on the server: merged afresh, every file uploaded, nothing deleted
    account.addressbook("work", "Work")
    code, out = device.sync()
    assert code == 0, out
    assert account.items("work") == {"w0", "w1", "w2"}
    assert files(device.contacts / "work") == before


def test_a_listed_collection_the_account_lacks_is_a_config_error(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    account.addressbook("family", "Family")
    account.calendar("personal", "Personal")
    device = Device(tmp_path / "d", dav_account.url, dav_account,
                    contacts='["familly"]', calendars='["personal"]')
    proc = device.run("sync")
    assert proc.returncode == 2
    assert ("[device] [contacts] collections: the account has no addressbook named 'familly'"
            in proc.stderr)
    assert "Did you mean 'family'?" in proc.stderr
    device = Device(tmp_path / "e", dav_account.url, dav_account,
                    contacts='["family"]', calendars='["personal"]')
    code, out = device.sync()
    assert code == 0, out
    assert sorted(out["collections"]) == ["family", "personal"]
    assert (device.contacts / "family").is_dir()


def _hostile_listing(home_path: str) -> bytes:
    names = ["..%2Fx", "a%2Fb", "x" * 300, "ctl%01%1Bname", ".hidden", "%2E%2E"]
    responses = "".join(
        f"<D:response><D:href>{home_path}{n}/</D:href><D:propstat><D:prop><D:resourcetype>"
        "<D:collection/><C:addressbook/></D:resourcetype>"
        f"<D:displayname>../evil\nsecond line</D:displayname></D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        for n in names)
    offhome = ("<D:response><D:href>/elsewhere/stolen/</D:href><D:propstat><D:prop>"
               "<D:resourcetype><D:collection/><C:addressbook/></D:resourcetype></D:prop>"
               "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")
    return ('<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:carddav">{responses}{offhome}'
            "</D:multistatus>").encode()


def test_hostile_collection_names_become_safe_folder_names(
    tmp_path: Path, dav_account: DavAccount, account: Account, hostile_proxy: LoopbackProxy,
) -> None:
    home_path = f"/{dav_account.username}/"

    def handler(request: Request, upstream: object) -> Reply:
        if request.method == "PROPFIND" and request.path == home_path \
                and request.headers.get("depth") == "1":
            return Reply(207, {"Content-Type": "application/xml"}, _hostile_listing(home_path))
        return upstream()  # type: ignore[operator, no-any-return]

    hostile_proxy.handler = handler
    device = Device(tmp_path / "d", hostile_proxy.url, dav_account, calendars=None)
    device.sync()  # the collections do not exist upstream: their syncs fail, folders stay
    made = sorted(p.name for p in device.contacts.iterdir())
    assert made == sorted(["hidden", "_x", "a_b", "ctl__name",
                           "x" * 91 + "-" + made[-1][-8:]]), made
    assert all(len(name) <= 100 and "/" not in name and not name.startswith(".")
               for name in made)
    assert not (tmp_path / "d" / "x").exists() and not Path("/elsewhere").exists()
    for folder in device.contacts.iterdir():
        assert list(folder.iterdir()) in ([], [folder / "displayname"])


def test_the_collections_command_lists_the_account(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    _fill(account)
    device = Device(tmp_path / "d", dav_account.url, dav_account)
    proc = device.run("collections", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["collections"]
    assert [(r["kind"], r["name"]) for r in rows] == [
        ("contacts", "family"), ("contacts", "friends"), ("contacts", "work"),
        ("calendars", "holidays"), ("calendars", "office"), ("calendars", "personal"),
        ("calendars", "sport")]
    family = rows[0]
    assert (family["displayname"], family["items"]) == ("Family", 2)
    assert rows[-1]["color"] == "#00FF00FF"
    proc = device.run("discover")
    assert proc.returncode == 0
    assert "contacts   family        2 items  'Family'" in proc.stdout


def test_the_collections_command_exits_3_when_the_server_refuses_or_is_away(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    wrong = DavAccount(dav_account.server, dav_account.username, "wrong")
    proc = Device(tmp_path / "d", dav_account.url, wrong).run("collections")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "wrong" not in proc.stderr
    away = Device(tmp_path / "e", "http://127.0.0.1:9/", dav_account, server="max_retries = 0\n")
    proc = away.run("collections")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("davsync: ") and "Traceback" not in proc.stderr


def test_only_and_status_name_each_collection(
    tmp_path: Path, dav_account: DavAccount, account: Account,
) -> None:
    account.addressbook("family", "Family")
    account.calendar("personal", "Personal")
    account.calendar("sport", "Sport")
    device = Device(tmp_path / "d", dav_account.url, dav_account)
    code, out = device.sync("--only", "family", "--only", "calendars/sport")
    assert code == 0 and sorted(out["collections"]) == ["family", "sport"], out
    assert not (device.calendars / "personal").exists()
    proc = device.run("sync", "--only", "nope")
    assert proc.returncode == 2
    assert "--only 'nope': no configured kind and no collection" in proc.stderr
    code, out = device.sync("--only", "calendars")
    assert sorted(out["collections"]) == ["personal", "sport"]
    status = json.loads(device.run("status", "--json").stdout)["sync"]
    assert sorted(status) == ["family", "personal", "sport"]
    assert status["sport"]["kind"] == "calendars"


def test_xandikos_every_collection_both_ways(
    tmp_path: Path, xandikos_account: XandikosAccount,
) -> None:
    """Xandikos keeps addressbooks and calendars in two homes; `--defaults` made one each."""
    device = Device(tmp_path / "d", xandikos_account.url, xandikos_account)  # type: ignore[arg-type]
    friends, trips = device.contacts / "friends", device.calendars / "trips"
    friends.mkdir(parents=True)
    trips.mkdir(parents=True)
    (friends / "f1.vcf").write_bytes(vcard("f1", "friend one"))
    (trips / "t1.ics").write_bytes(event("t1", "trip"))
    code, out = device.sync()
    assert code == 0, out
    assert sorted(out["collections"]) == ["addressbook", "calendar", "friends", "trips"]
    assert out["collections"]["friends"]["uploaded"] == out["collections"]["trips"]["uploaded"] == 1
    assert (device.contacts / "addressbook").is_dir() and (device.calendars / "calendar").is_dir()
    other = Device(tmp_path / "e", xandikos_account.url, xandikos_account)  # type: ignore[arg-type]
    code, out = other.sync()
    assert code == 0, out
    assert [f for f in files(other.contacts / "friends") if f.endswith(".vcf")]
    assert [f for f in files(other.calendars / "trips") if f.endswith(".ics")]
    code, out = device.sync()
    assert code == 0 and all(r["uploaded"] + r["downloaded"] == 0
                             for r in out["collections"].values()), out
