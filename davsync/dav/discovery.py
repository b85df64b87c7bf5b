"""Discovery (RFC 6764, 6352, 4791): from the configured URL to the user's addressbook or
calendar home, and the named collection in it; or straight to a collection whose URL is known
already (from state), with no request.

Every URL discovery follows comes from the server, so every request still goes through
`DavClient.request` and its origin rule; a name the account does not have is a configuration
error that lists the names it does have.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote, urljoin

from davsync.core.collections import ServerCollection
from davsync.core.kinds import Kind, noun
from davsync.dav import xmlbodies as xb
from davsync.dav.api import DavError
from davsync.dav.collection import Collection
from davsync.dav.hrefs import is_member, normalize_href, strip_userinfo
from davsync.dav.multistatus import DavResponse, parse_multistatus
from davsync.dav.probe import probe_from, probe_props
from davsync.dav.quirks import RADICALE_NS, identify
from davsync.errors import ServerSettingError

if TYPE_CHECKING:
    from davsync.dav.client import DavClient

_XML: Final = xb.XML_CONTENT
_RADICALE_VERSION: Final = xb.qname(RADICALE_NS, "version")
_LISTING_PROPS: Final = (xb.RESOURCETYPE, xb.DISPLAYNAME, xb.CALENDAR_COLOR,
                         xb.SUPPORTED_COMPONENTS)
# A sync's listing asks for the change markers too (getctag, and getlastmodified where that is
# one: `dav.probe`): it is then every listed collection's change probe, so a run of
# `collections = "all"` that finds nothing changed costs the listing, not one probe more per
# collection. Not asked where nothing probes (`davsync collections`, doctor, the
# unknown-name message).


def unknown_collection(setting: str, kind: Kind, name: str, others: Sequence[str]) -> str:
    """The config error for a collection name the account does not have, given in `setting`
    (`[server] addressbook`, `[device] [contacts] collections`), with the closest of the
    names it does have."""
    close = difflib.get_close_matches(name, others, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(repr(o) for o in others) or "none yet"
    return (f"{setting}: the account has no {noun(kind)} named {name!r}; its {noun(kind)}s: "
            f"{listed}.{hint} Correct the name, or set create = true in [server] to create "
            f"{name!r}")


def open_collection(
    client: DavClient, url: str, kind: Kind, displayname: str | None = None
) -> Collection:
    """A collection whose URL is already known (from state): no request is made."""
    return Collection(client, urljoin(client.url, url), kind, exists=True,
                      displayname=displayname)


def find_collection(
    client: DavClient, kind: Kind, name: str, displayname: str | None = None, *,
    create: bool = False,
) -> Collection:
    """Discover the user's addressbook or calendar home (RFC 6764, 6352, 4791) and the
    collection <home>/<name>/ in it; `exists` says whether it is there yet.

    A missing collection is to be created only when the account has none of its kind or
    `create` says so: otherwise a typo in the name would start a new, empty collection
    and upload everything into it. Then ServerSettingError names the ones it has."""
    home = _find_home(client, kind)
    home = home if home.endswith("/") else home + "/"
    url = urljoin(home, quote(name, safe="") + "/")
    collection = Collection(client, url, kind, exists=False, displayname=displayname)
    collection.load()
    if not collection.exists and not create:
        others = _collection_names(client, home, kind)
        if others:
            raise ServerSettingError(
                unknown_collection(f"[server] {noun(kind)}", kind, name, others))
    return collection

def _collection_names(client: DavClient, home: str, kind: Kind) -> list[str]:
    """The names (last path segments) of the home's collections of `kind`."""
    return sorted(c.name for c in list_home(client, home, kind))


def list_collections(
    client: DavClient, kind: Kind, *, probes: bool = False
) -> tuple[str, list[ServerCollection]]:
    """The home of `kind` and every addressbook or calendar in it, with display name, colour
    and calendar components (one PROPFIND Depth 1 after the home is found); with `probes`,
    each one's getctag too (`list_home`)."""
    home = _find_home(client, kind)
    home = home if home.endswith("/") else home + "/"
    return home, list_home(client, home, kind, probes=probes)


def list_home(
    client: DavClient, home: str, kind: Kind, *, probes: bool = False, marked: bool = False
) -> list[ServerCollection]:
    """The collections of `kind` in the home at `home` (a URL ending in "/"), one PROPFIND
    Depth 1; DavError where that is not a listing. With `probes`, each one's change markers
    (its probe for a sync: `dav.probe.probe_props`, `marked` when every collection synced
    before holds a fresh getlastmodified mark). A response whose href is not directly inside
    the home (`../x`, another host, a deeper path) is ignored, as is a second one of a name."""
    props: tuple[str, ...] = _LISTING_PROPS
    if probes:
        props = (*props, *(m for m in probe_props(client.server, marked=marked)
                           if m != xb.SUPPORTED_REPORT_SET))
    started = time.monotonic()
    response = client.request(
        "PROPFIND", home, headers={"Depth": "1", **_XML}, content=xb.propfind(props),
    )
    seconds, date = time.monotonic() - started, response.headers.get("Date")
    if response.status_code != 207:
        raise client.failure("PROPFIND", home, response)
    ms = parse_multistatus(response.content, home)
    wanted = xb.ADDRESSBOOK if kind == "contacts" else xb.CALENDAR
    home_path = normalize_href(home, home)
    found: dict[str, ServerCollection] = {}
    for r in ms.responses:
        href = r.href.rstrip("/")
        if not is_member(href, home_path) or wanted not in r.child_tags(xb.RESOURCETYPE):
            continue
        name = unquote(href.rsplit("/", 1)[-1])
        probe = probe_from(r, date=date, seconds=seconds) if probes else None
        found.setdefault(name, ServerCollection(
            name, href + "/", r.text(xb.DISPLAYNAME), r.text(xb.CALENDAR_COLOR),
            _components(r), probe.ctag if probe else None,
            probe.modified if probe else None, probe.settled if probe else False,
        ))
    return sorted(found.values(), key=lambda c: c.name)


def _components(response: DavResponse) -> tuple[str, ...]:
    element = response.props.get(xb.SUPPORTED_COMPONENTS)
    if element is None:
        return ()
    return tuple(sorted({c.get("name", "") for c in element} - {""}))


def set_properties(client: DavClient, url: str, values: Mapping[str, str]) -> None:
    """PROPPATCH the collection at `url` (display name, colour). A 207 lists each property
    with its status: one not answered with 2xx means nothing was set (RFC 4918 9.2)."""
    response = client.request("PROPPATCH", url, headers=_XML, content=xb.proppatch(values))
    if response.status_code // 100 != 2:
        raise client.failure("PROPPATCH", url, response)
    if response.status_code != 207:
        return
    answers = parse_multistatus(response.content, url).responses
    refused = [k for k in values if not any(k in r.props for r in answers)]
    if refused:
        raise DavError(f"PROPPATCH {url}: the server did not set {refused[0]}")


def _find_home(client: DavClient, kind: Kind) -> str:
    home_prop = xb.ADDRESSBOOK_HOME_SET if kind == "contacts" else xb.CALENDAR_HOME_SET
    props = (xb.CURRENT_USER_PRINCIPAL, home_prop, xb.RESOURCETYPE, _RADICALE_VERSION)
    well_known = urljoin(client.origin, "/.well-known/carddav" if kind == "contacts" else
                         "/.well-known/caldav")
    fallback: str | None = None
    for start in (client.url, well_known):
        found = _propfind_optional(client, start, props)
        if found is None:
            continue
        url, response = found
        home = response.child_href(home_prop)
        if home:
            return urljoin(url, home)
        principal = response.child_href(xb.CURRENT_USER_PRINCIPAL)
        if principal:
            found = _propfind_optional(client, urljoin(url, principal), props)
            if found is not None and found[1].child_href(home_prop):
                return urljoin(found[0], found[1].child_href(home_prop) or "")
        if fallback is None and xb.COLLECTION in response.child_tags(xb.RESOURCETYPE):
            fallback = url
    if fallback is not None:
        return fallback
    protocol = "CardDAV" if kind == "contacts" else "CalDAV"
    raise ServerSettingError(
        f"[server] url: {client.url} does not answer as a {protocol} server (no {kind} home "
        f"at that URL, at {well_known} or through current-user-principal); set url to the "
        "address of your DAV server or account"
    )

def _propfind_optional(
    client: DavClient, url: str, props: Sequence[str]
) -> tuple[str, DavResponse] | None:
    """PROPFIND Depth 0 during discovery: None where the URL is not a DAV resource."""
    response = client.request(
        "PROPFIND", url, headers={"Depth": "0", **_XML}, content=xb.propfind(props),
        follow_redirects=True,
    )
    if response.status_code != 207:
        return None
    final_url = str(response.request.url)
    ms = parse_multistatus(response.content, strip_userinfo(final_url))
    if not ms.responses:
        return None
    first = ms.responses[0]
    client.learn(identify(radicale_version=first.text(_RADICALE_VERSION)))
    return final_url, first
