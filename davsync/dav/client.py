"""DavClient and Collection: the DavCollection contract over httpx, for CardDAV and CalDAV.

Every request goes through `DavClient.request`: it refuses any URL off the configured origin
(no credential, no data), adds Basic credentials, counts the request, bounds its time and the
size of its answer (`bounds.py`), retries transient failures with the policy in `retry.py`,
refreshes credentials once on a 401, and turns transport failures into davsync errors.
Everything above it only builds bodies (`xmlbodies`), reads answers (`multistatus`) and decides.
"""

from __future__ import annotations

import difflib
import logging
import random
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx

from davsync.core.kinds import Kind
from davsync.dav import xmlbodies as xb
from davsync.dav.api import (
    DEFAULT_REQUEST_TIMEOUT,
    Authenticator,
    Created,
    DavAuthError,
    DavError,
    DavUnreachable,
    Fetched,
    InvalidSyncToken,
    PreconditionFailed,
    Probe,
    RequestCounter,
    SyncDelta,
    basic_authorization,
)
from davsync.dav.bounds import (
    LISTING,
    MULTIGET,
    SMALL,
    AnswerLimit,
    AnswerTooLarge,
    RequestOverdue,
    deadline,
    install_deadline,
    read_bounded,
)
from davsync.dav.bulkbody import calendar_body, vcard_body
from davsync.dav.bulkmap import map_bulk, read_uid
from davsync.dav.hrefs import (
    href_for,
    is_member,
    normalize_href,
    origin,
    radicale_bulk_fits,
    same_origin,
    suffix_for,
    unique,
)
from davsync.dav.multistatus import (
    DavResponse,
    Multistatus,
    SyncAccumulator,
    error_conditions,
    member_etags,
    parse_multistatus,
    read_sync_page,
)
from davsync.dav.quirks import (
    RADICALE_NS,
    UNKNOWN_SERVER,
    ServerInfo,
    identify,
    rating,
)
from davsync.dav.retry import RETRY_AFTER_STATUSES, is_transient, retry_delay
from davsync.dav.tls import tls_context
from davsync.dav.writegate import WriteGate
from davsync.errors import ServerSettingError

log = logging.getLogger(__name__)

_XML: Final = {"Content-Type": "application/xml; charset=utf-8"}
_MEDIA_TYPE: Final[Mapping[str, str]] = {
    "contacts": "text/vcard; charset=utf-8",
    "calendars": "text/calendar; charset=utf-8",
}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5
_MAX_SYNC_PAGES: Final = 1000
_RADICALE_VERSION: Final = xb.qname(RADICALE_NS, "version")
_REASON_CHARS: Final = 200
_V = TypeVar("_V")


def _tls_failure(exc: BaseException) -> str | None:
    """What the TLS layer said, when that is why a request failed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate not trusted ({seen.verify_message})"
        if isinstance(seen, ssl.SSLError):
            return seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _unknown_collection(kind: Kind, name: str, others: Sequence[str]) -> str:
    """The config error for a collection name the account does not have, with the closest
    of the names it does have."""
    noun = "addressbook" if kind == "contacts" else "calendar"  # also its [server] key
    close = difflib.get_close_matches(name, others, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(repr(o) for o in others)
    return (f"[server] {noun}: the account has no {noun} named {name!r}; its {noun}s: "
            f"{listed}.{hint} Correct the name, or set create = true in [server] to create "
            f"{name!r}")


def _strip_userinfo(url: str) -> str:
    """The URL as it may appear in messages: never with user:password@."""
    return origin(url) + urlsplit(url).path


class DavClient:
    """One DAV server account: a keep-alive connection pool plus the credentials.

    Thread-safe: multiget batches run on a small pool sharing this client. Refreshing
    credentials happens at most once per client; create one client per sync run.
    """

    def __init__(
        self,
        url: str,
        auth: Authenticator,
        *,
        verify_tls: bool = True,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        concurrency: int = 4,
        multiget_batch: int = 50,
        max_retries: int = 4,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        counter: RequestCounter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: a context already built from `verify_tls` (by the early probe), so that the
        CA bundle is loaded once per run. `request_timeout`: the most one HTTP exchange may
        take, from sending to the answer's last byte (a retry is a new exchange)."""
        self.url = _strip_userinfo(url)
        self.origin = origin(url)
        self.counter = counter if counter is not None else RequestCounter()
        self.server: ServerInfo = UNKNOWN_SERVER
        self.concurrency = max(1, concurrency)
        self.multiget_batch = max(1, multiget_batch)
        self._auth = auth
        self._max_retries = max_retries
        self._request_timeout = request_timeout
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._refresh_result: bool | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http = httpx.Client(
            transport=transport,
            # Loading the CA bundle costs ~80 ms of a ~0.9 s no-op run; a plain-http origin
            # never does TLS (redirects are followed only within this origin).
            verify=(tls or tls_context(verify_tls)) if self.origin.startswith("https:") else False,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
            follow_redirects=False,
        )
        install_deadline(self._http)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._http.close()

    def __enter__(self) -> DavClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def executor(self) -> ThreadPoolExecutor:
        with self._count_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="davsync-dav")
            return self._pool

    # -- collections -----------------------------------------------------------------------

    def open_collection(self, url: str, kind: Kind, displayname: str | None = None) -> Collection:
        """A collection whose URL is already known (from state): no request is made."""
        return Collection(self, urljoin(self.url, url), kind, exists=True, displayname=displayname)

    def find_collection(
        self, kind: Kind, name: str, displayname: str | None = None, *, create: bool = False
    ) -> Collection:
        """Discover the user's addressbook or calendar home (RFC 6764, 6352, 4791) and the
        collection <home>/<name>/ in it; `exists` says whether it is there yet.

        A missing collection is to be created only when the account has none of its kind or
        `create` says so: otherwise a typo in the name would start a new, empty collection
        and upload everything into it. Then ServerSettingError names the ones it has."""
        home = self._find_home(kind)
        home = home if home.endswith("/") else home + "/"
        url = urljoin(home, quote(name, safe="") + "/")
        collection = Collection(self, url, kind, exists=False, displayname=displayname)
        collection.load()
        if not collection.exists and not create:
            others = self._collection_names(home, kind)
            if others:
                raise ServerSettingError(_unknown_collection(kind, name, others))
        return collection

    def _collection_names(self, home: str, kind: Kind) -> list[str]:
        """The names (last path segments) of the home's collections of `kind`."""
        response = self.request(
            "PROPFIND", home, headers={"Depth": "1", **_XML},
            content=xb.propfind((xb.RESOURCETYPE,)),
        )
        if response.status_code != 207:
            raise self.failure("PROPFIND", home, response)
        ms = parse_multistatus(response.content, home)
        wanted = xb.ADDRESSBOOK if kind == "contacts" else xb.CALENDAR
        home_path = normalize_href(home, home)
        return sorted(
            unquote(r.href.rstrip("/").rsplit("/", 1)[-1]) for r in ms.responses
            if r.href.rstrip("/") != home_path.rstrip("/")
            and wanted in r.child_tags(xb.RESOURCETYPE)
        )

    def _find_home(self, kind: Kind) -> str:
        home_prop = xb.ADDRESSBOOK_HOME_SET if kind == "contacts" else xb.CALENDAR_HOME_SET
        props = (xb.CURRENT_USER_PRINCIPAL, home_prop, xb.RESOURCETYPE, _RADICALE_VERSION)
        well_known = urljoin(self.origin, "/.well-known/carddav" if kind == "contacts" else
                             "/.well-known/caldav")
        fallback: str | None = None
        for start in (self.url, well_known):
            found = self._propfind_optional(start, props)
            if found is None:
                continue
            url, response = found
            home = response.child_href(home_prop)
            if home:
                return urljoin(url, home)
            principal = response.child_href(xb.CURRENT_USER_PRINCIPAL)
            if principal:
                found = self._propfind_optional(urljoin(url, principal), props)
                if found is not None and found[1].child_href(home_prop):
                    return urljoin(found[0], found[1].child_href(home_prop) or "")
            if fallback is None and xb.COLLECTION in response.child_tags(xb.RESOURCETYPE):
                fallback = url
        if fallback is not None:
            return fallback
        protocol = "CardDAV" if kind == "contacts" else "CalDAV"
        raise ServerSettingError(
            f"[server] url: {self.url} does not answer as a {protocol} server (no {kind} home "
            f"at that URL, at {well_known} or through current-user-principal); set url to the "
            "address of your DAV server or account"
        )

    def _propfind_optional(
        self, url: str, props: Sequence[str]
    ) -> tuple[str, DavResponse] | None:
        """PROPFIND Depth 0 during discovery: None where the URL is not a DAV resource."""
        response = self.request(
            "PROPFIND", url, headers={"Depth": "0", **_XML}, content=xb.propfind(props),
            follow_redirects=True,
        )
        if response.status_code != 207:
            return None
        final_url = str(response.request.url)
        ms = parse_multistatus(response.content, _strip_userinfo(final_url))
        if not ms.responses:
            return None
        first = ms.responses[0]
        self.learn(identify(radicale_version=first.text(_RADICALE_VERSION)))
        return final_url, first

    def learn(self, server: ServerInfo) -> None:
        """Remember what server this is, the first time something tells us."""
        if self.server == UNKNOWN_SERVER and server != UNKNOWN_SERVER:
            self.server = server

    # -- the one place that does network I/O ------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
        retry_server_errors: bool = True,
        limit: AnswerLimit = SMALL,
        on_retry: Callable[[int | None], None] | None = None,
    ) -> httpx.Response:
        """Send one logical request: credentials, counting, retries, one credential refresh.

        Returns any answer that is not 401 or transient, its body read (at most `limit`);
        raises DavAuthError, DavUnreachable (connection failures, 429/503 after all retries,
        an exchange over the request deadline) or DavError (another origin, an answer over
        `limit`, other 5xx after all retries). `retry_server_errors=False` gives up on
        500/502/504 at once (used while bisecting a failing multiget, where the failure is the
        item, not the weather). `on_retry(status)` hears of each retry (None: a connection
        failure), so a writer can learn that the server is contended.
        """
        self._check_origin(url)
        attempt = 0
        redirects = 0
        refreshed = False
        while True:
            try:
                response = self._send(method, url, headers, content, limit)
            except httpx.TransportError as exc:
                refused = _tls_failure(exc)
                if refused is not None:  # a certificate does not fix itself: no retries
                    raise DavUnreachable(
                        f"{self.origin}: TLS failed: {refused}. If the server's certificate "
                        "comes from a private CA, point SSL_CERT_FILE at that CA's certificate; "
                        "[server] verify_tls = false turns the check off."
                    ) from None
                delay = self._delay(None, {}, attempt)
                if delay is None:
                    raise DavUnreachable(
                        f"{self.origin}: {method} {_strip_userinfo(url)} failed after "
                        f"{attempt + 1} attempt(s): {type(exc).__name__}. Check the server URL "
                        "and that the server is running and reachable."
                    ) from None
                if on_retry is not None:
                    on_retry(None)
                self._sleep(delay)
                attempt += 1
                continue
            status = response.status_code
            if status == 401:
                self.learn(identify(www_authenticate=response.headers.get("www-authenticate")))
                if not refreshed and self._refresh():
                    refreshed = True
                    continue
                if refreshed:
                    with self._auth_lock:  # even fresh credentials fail: stop retrying 401s
                        self._refresh_result = False
                username = self._auth.credentials()[0]
                raise DavAuthError(
                    f"{self.origin} refused the credentials of user {username!r} (HTTP 401); "
                    "check the username and password (or re-provision the device)"
                )
            if follow_redirects and status in _REDIRECTS and "location" in response.headers:
                redirects += 1
                url = self._redirect_target(url, response.headers["location"], redirects)
                continue
            if is_transient(status) and (retry_server_errors or status in RETRY_AFTER_STATUSES):
                delay = self._delay(status, response.headers, attempt)
                if delay is not None:
                    if on_retry is not None:
                        on_retry(status)
                    self._sleep(delay)
                    attempt += 1
                    continue
                if status in RETRY_AFTER_STATUSES:
                    raise DavUnreachable(
                        f"{self.origin}: {method} {_strip_userinfo(url)} still answered HTTP "
                        f"{status} after {attempt + 1} attempt(s); the server is overloaded or "
                        "down, try again later"
                    )
                raise self.failure(method, url, response, f" after {attempt + 1} attempt(s)")
            return response

    def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None, content: bytes | None,
        limit: AnswerLimit,
    ) -> httpx.Response:
        """One HTTP exchange within the request deadline, its answer read up to `limit`."""
        with self._count_lock:
            self.counter.add(method)
        all_headers = {"Authorization": self._authorization(), **(headers or {})}
        request = self._http.build_request(method, url, headers=all_headers, content=content)
        try:
            with deadline(self._request_timeout):
                return read_bounded(self._http.send(request, stream=True), limit)
        except RequestOverdue:
            raise DavUnreachable(
                f"{self.origin}: {method} {_strip_userinfo(url)} did not finish within "
                f"{self._request_timeout:g} s; the server stalled or is far too slow. The run "
                "stopped and keeps what it finished; try again later (or raise [server] "
                "request_timeout)."
            ) from None
        except AnswerTooLarge as exc:
            raise DavError(
                f"{method} {_strip_userinfo(url)} on {self.origin}: the answer is larger than "
                f"{exc}; not read further"
            ) from None

    def _check_origin(self, url: str) -> None:
        """Refuse, before any credential or data leaves, a URL off the configured origin: URLs
        learned from the server (home sets, collection and item hrefs) can point anywhere."""
        if not same_origin(url, self.origin):
            raise DavError(
                f"{self.origin} pointed davsync at {_strip_userinfo(url)}, on another server; "
                f"credentials and data are only sent to the configured {self.origin}. If that "
                "server is the right one, configure it as [server] url."
            )

    def _authorization(self) -> str:
        return basic_authorization(self._auth)

    def _refresh(self) -> bool:
        """Ask the authenticator for new credentials once per client; remember its answer."""
        with self._auth_lock:
            if self._refresh_result is None:
                self._refresh_result = self._auth.refresh()
            return self._refresh_result

    def _delay(self, status: int | None, headers: Mapping[str, str], attempt: int) -> float | None:
        return retry_delay(
            status, headers, attempt, self._max_retries, now=datetime.now(UTC),
            jitter=random.random(),
        )

    def _redirect_target(self, url: str, location: str, redirects: int) -> str:
        target = urljoin(url, location)
        if redirects > _MAX_REDIRECTS:
            raise DavError(f"{_strip_userinfo(url)}: more than {_MAX_REDIRECTS} redirects")
        if not same_origin(target, self.origin):
            raise DavError(
                f"{_strip_userinfo(url)} redirects to another server ({origin(target)}); "
                "credentials are only sent to the configured one: configure that URL instead"
            )
        return target

    def failure(self, method: str, url: str, response: httpx.Response, extra: str = "") -> DavError:
        """A DavError naming the request and the server's short reason, without secrets."""
        return DavError(
            f"{method} {_strip_userinfo(url)} on {self.origin}: HTTP {response.status_code}"
            f"{extra}{self._reason(response)}",
            response.status_code,
        )

    def _reason(self, response: httpx.Response) -> str:
        conditions = error_conditions(response.content)
        if conditions:
            return ": " + ", ".join(sorted(c.rsplit("}", 1)[-1] for c in conditions))
        text = " ".join(response.text.split())
        password = self._auth.credentials()[1].reveal()
        for secret in (password, self._authorization().split(" ", 1)[1]):
            if secret:
                text = text.replace(secret, "******")
        text = text[:_REASON_CHARS]
        return f": {text}" if text else ""


class Collection:
    """One addressbook or calendar; implements `davsync.sync.ports.DavCollection`."""

    def __init__(
        self,
        client: DavClient,
        url: str,
        kind: Kind,
        *,
        exists: bool,
        displayname: str | None = None,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.kind: Kind = kind
        self.exists = exists
        self.displayname = displayname
        self.path = normalize_href(self.url, self.url)
        self.last_sync_token: str | None = None
        self.loaded_probe: Probe | None = None
        self._client = client
        self._reports: frozenset[str] | None = None
        self._ignored: set[str] = set()  # hrefs off the collection, reported once
        self._ignored_lock = threading.Lock()
        self._writes = WriteGate(client.concurrency, self.url)

    def __repr__(self) -> str:
        return f"Collection({self.url!r}, {self.kind!r}, exists={self.exists})"

    # -- reading ---------------------------------------------------------------------------

    def _propfind(self, props: Sequence[str], depth: str) -> Multistatus:
        response = self._client.request(
            "PROPFIND", self.url, headers={"Depth": depth, **_XML}, content=xb.propfind(props),
            limit=SMALL if depth == "0" else LISTING,
        )
        if response.status_code == 404:  # gone (or never made): create it before writing
            self.exists = False
        if response.status_code != 207:
            raise self._client.failure("PROPFIND", self.url, response)
        return parse_multistatus(response.content, self.url)

    def _own(self, ms: Multistatus) -> DavResponse:
        """The collection's own response. Xandikos answers a PROPFIND of a missing collection
        with a 207 whose only response says 404: that is a 404 (DavError status 404)."""
        own = ms.own(self.path)
        if own is None:
            raise DavError(f"{self.url}: the answer does not describe the collection itself")
        if own.status == 404:
            raise DavError(f"{self.url}: not found on the server (HTTP 404)", 404)
        return own

    def _observe(self, own: DavResponse) -> None:
        if xb.SUPPORTED_REPORT_SET in own.props:
            self._reports = own.reports()
        self._client.learn(identify(sync_token=own.text(xb.SYNC_TOKEN)))

    def load(self) -> None:
        """Find out whether the collection exists and is of the right kind (one PROPFIND).

        It asks for the probe's properties too and keeps what it saw in `loaded_probe`, so a
        first run needs no second probe; not for the sync-token, which on Radicale would walk
        every item a second time."""
        response = self._client.request(
            "PROPFIND",
            self.url,
            headers={"Depth": "0", **_XML},
            content=xb.propfind((xb.RESOURCETYPE, *xb.PROBE_PROPS)),
        )
        if response.status_code == 404:
            self.exists = False
            return
        if response.status_code != 207:
            raise self._client.failure("PROPFIND", self.url, response)
        try:
            own = self._own(parse_multistatus(response.content, self.url))
        except DavError as exc:
            if exc.status != 404:
                raise
            self.exists = False
            return
        self._check_type(own)
        self.loaded_probe = self._ctag_probe(own)
        self.exists = True

    def _check_type(self, own: DavResponse) -> None:
        types = own.child_tags(xb.RESOURCETYPE)
        wanted, noun = (
            (xb.ADDRESSBOOK, "an addressbook") if self.kind == "contacts" else
            (xb.CALENDAR, "a calendar")
        )
        if wanted not in types:
            raise DavError(
                f"{self.url} exists but is not {noun}; choose another collection name"
            )

    def probe(self) -> Probe:
        """getctag alone (`xb.PROBE_PROPS`); servers without getctag get a second PROPFIND
        for the sync-token."""
        found = self._ctag_probe(self._own(self._propfind(xb.PROBE_PROPS, "0")))
        return found if found is not None else self._token_probe()

    def read_probe(self, status: int, content: bytes) -> Probe | None:
        """The probe from an answer to `xb.PROBE_PROPS` sent some other way (the early
        probe); None when it is not a usable 207 with a getctag: then call `probe()`."""
        if status != 207:
            return None
        try:
            return self._ctag_probe(self._own(parse_multistatus(content, self.url)))
        except DavError as exc:
            log.debug("%s: early probe answer not used: %s", self.url, exc)
            return None

    def _ctag_probe(self, own: DavResponse) -> Probe | None:
        self._observe(own)
        ctag = own.text(xb.GETCTAG)
        return Probe(ctag, None) if ctag is not None else None

    def _token_probe(self) -> Probe:
        own = self._own(self._propfind((xb.SYNC_TOKEN,), "0"))
        self._observe(own)
        return Probe(None, own.text(xb.SYNC_TOKEN))

    def supports_sync_collection(self) -> bool:
        said = rating(self._client.server, "sync_collection")
        if said is not None:
            return said == "supported"
        if self._reports is None:
            self._observe(self._own(self._propfind((xb.SUPPORTED_REPORT_SET,), "0")))
        return xb.SYNC_COLLECTION in (self._reports or frozenset())

    def sync(self, token: str | None) -> SyncDelta:
        merged = SyncAccumulator()
        current = token
        for _ in range(_MAX_SYNC_PAGES):
            page = read_sync_page(self._sync_report(current), self.path, self.url)
            merged.add(page)
            if not page.truncated:
                self.last_sync_token = page.token
                deleted = self._members(dict.fromkeys(merged.deleted))
                return SyncDelta(self._members(merged.changed), frozenset(deleted), page.token)
            if page.token == current:
                raise DavError(f"{self.url}: sync answer truncated (507) without a new token")
            current = page.token
        raise DavError(f"{self.url}: sync still truncated after {_MAX_SYNC_PAGES} pages")

    def _sync_report(self, token: str | None) -> Multistatus:
        response = self._client.request(
            "REPORT", self.url, headers={"Depth": "0", **_XML}, content=xb.sync_collection(token),
            limit=LISTING,
        )
        status = response.status_code
        if status in (403, 412):
            conditions = error_conditions(response.content)
            detail = "valid-sync-token" if xb.VALID_SYNC_TOKEN in conditions else f"HTTP {status}"
            raise InvalidSyncToken(
                f"{self.url}: the server refused the sync token ({detail}); a full listing "
                "is needed",
                status,
            )
        if status != 207:
            raise self._client.failure("REPORT sync-collection", self.url, response)
        ms = parse_multistatus(response.content, self.url)
        self._client.learn(identify(sync_token=ms.sync_token))
        return ms

    def list_etags(self) -> dict[str, str | None]:
        return self._members(
            member_etags(self._propfind((xb.GETETAG, xb.RESOURCETYPE), "1"), self.path)
        )

    def _members(self, listing: Mapping[str, _V]) -> dict[str, _V]:
        """The entries of a server listing that are items of this collection. The others
        (another collection's item, "../x", an href on another host) are never synced, read,
        written or deleted; each is reported once per run."""
        members = {href: v for href, v in listing.items() if is_member(href, self.path)}
        for href in listing.keys() - members.keys() - {self.path}:
            with self._ignored_lock:
                if href in self._ignored:
                    continue
                self._ignored.add(href)
            log.warning(
                "%s: the server listed %s, which is not an item of this collection; ignored",
                self.url, href,
            )
        return members

    def multiget(self, hrefs: Sequence[str]) -> Iterator[Fetched]:
        asked = unique(normalize_href(href, self.url) for href in hrefs)
        wanted = [href for href in asked if is_member(href, self.path)]
        for href in asked:
            if not is_member(href, self.path):
                yield Fetched(href, None, None, f"not an item of {self.url}; not read")
        size = self._client.multiget_batch
        batches = [wanted[i : i + size] for i in range(0, len(wanted), size)]
        if len(batches) <= 1:
            for batch in batches:
                yield from self._fetch_batch(batch, retry_server_errors=True)
            return
        pool = self._client.executor()
        queued = deque(batches)
        running: deque[Future[list[Fetched]]] = deque()
        try:
            while queued or running:
                while queued and len(running) < self._client.concurrency:
                    running.append(pool.submit(self._fetch_batch, queued.popleft(), True))
                yield from running.popleft().result()
        finally:
            for future in running:
                future.cancel()

    def _fetch_batch(self, hrefs: list[str], retry_server_errors: bool) -> list[Fetched]:
        """One multiget REPORT; on a whole-batch failure, bisect until the bad href is alone."""
        try:
            response = self._client.request(
                "REPORT",
                self.url,
                headers={"Depth": "1", **_XML},
                content=xb.multiget(self.kind, hrefs),
                retry_server_errors=retry_server_errors,
                limit=MULTIGET,
            )
            if response.status_code != 207:
                raise self._client.failure("REPORT multiget", self.url, response)
            ms = parse_multistatus(response.content, self.url)
        except DavError as exc:
            if len(hrefs) == 1:
                return [Fetched(hrefs[0], None, None, error=str(exc))]
            middle = len(hrefs) // 2
            return self._fetch_batch(hrefs[:middle], False) + self._fetch_batch(
                hrefs[middle:], False
            )
        return self._match(hrefs, ms)

    def _match(self, hrefs: list[str], ms: Multistatus) -> list[Fetched]:
        data_prop = xb.ADDRESS_DATA if self.kind == "contacts" else xb.CALENDAR_DATA
        by_href = self._members({response.href: response for response in ms.responses})
        fetched: list[Fetched] = []
        for href in hrefs:
            response = by_href.get(href)
            if response is None:
                fetched.append(Fetched(href, None, None, "the server did not answer for it"))
            elif response.status is not None and response.status // 100 != 2:
                fetched.append(
                    Fetched(href, None, None, f"HTTP {response.status}", response.status)
                )
            elif data_prop not in response.props or response.props[data_prop].text is None:
                fetched.append(Fetched(href, None, None, "the server sent no data for it"))
            else:
                data = (response.props[data_prop].text or "").encode("utf-8")
                fetched.append(Fetched(href, response.text(xb.GETETAG), data))
        return fetched

    # -- writing ---------------------------------------------------------------------------

    def href_for(self, uid: str) -> str:
        return href_for(self.path, uid, suffix_for(self.kind))

    def _item_url(self, href: str) -> str:
        """Where to write or delete `href`: only ever an item of this collection."""
        path = normalize_href(href, self.url)
        if not is_member(path, self.path):
            raise DavError(f"{href} is not an item of {self.url}; not written or deleted")
        return urljoin(self._client.origin, path)

    def create(self, href: str, data: bytes) -> str | None:
        return self._put(href, data, {"If-None-Match": "*"}, "it already exists on the server")

    def update(self, href: str, data: bytes, etag: str | None) -> str | None:
        condition = {} if etag is None else {"If-Match": etag}
        return self._put(href, data, condition, "it changed on the server since it was read")

    def _put(self, href: str, data: bytes, condition: Mapping[str, str], why: str) -> str | None:
        url = self._item_url(href)
        headers = {"Content-Type": _MEDIA_TYPE[self.kind], **condition}
        response = self._write("PUT", url, headers, data)
        if response.status_code == 412:
            raise PreconditionFailed(f"PUT {href} refused (412): {why}", 412)
        if response.status_code // 100 != 2:
            raise self._client.failure("PUT", url, response)
        return response.headers.get("etag") or None

    def _write(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None
    ) -> httpx.Response:
        """An item write, through the collection's `WriteGate` (narrowed by 423/5xx answers)."""
        with self._writes.slot():
            return self._client.request(
                method, url, headers=headers, content=data, on_retry=self._writes.answered
            )

    def delete(self, href: str, etag: str | None) -> None:
        url = self._item_url(href)
        headers = {} if etag is None else {"If-Match": etag}
        response = self._write("DELETE", url, headers, None)
        if response.status_code == 412:
            raise PreconditionFailed(
                f"DELETE {href} refused (412): it changed on the server since it was read", 412
            )
        if response.status_code != 404 and response.status_code // 100 != 2:
            raise self._client.failure("DELETE", url, response)

    def ensure_exists(self, displayname: str | None = None) -> None:
        """Create the collection if needed: extended MKCOL for an addressbook, MKCALENDAR
        (events and tasks) for a calendar."""
        if self.exists:
            return
        name = displayname or self.displayname
        if self.kind == "contacts":
            method, body = "MKCOL", xb.mkcol_addressbook(name)
        else:
            method, body = "MKCALENDAR", xb.mkcalendar(name)
        response = self._client.request(method, self.url, headers=_XML, content=body)
        if response.status_code in (405, 409):
            self.load()  # created meanwhile by someone else: fine if it is the right kind
            if self.exists:
                return
        if response.status_code // 100 != 2:
            raise self._client.failure(method, self.url, response)
        self.exists = True

    def can_bulk_create(self) -> bool:
        return (
            rating(self._client.server, "bulk_put_new_collection") == "supported"
            and not self.exists
        )

    def bulk_create(self, items: Sequence[tuple[str, bytes]]) -> dict[str, Created]:
        """One PUT of every item to the new collection URL, then one listing to learn where
        each landed. UIDs whose file name the server's OS would refuse go one by one."""
        if self.exists:
            raise DavError(f"{self.url}: bulk create refused, the collection already exists")
        repeated = [uid for uid, n in Counter(uid for uid, _ in items).items() if n > 1]
        if repeated:
            raise DavError(f"{self.url}: bulk create needs unique UIDs; {repeated[0]!r} repeats")
        suffix = suffix_for(self.kind)
        bulk = [(uid, data) for uid, data in items if radicale_bulk_fits(uid, suffix)]
        alone = [(uid, data) for uid, data in items if not radicale_bulk_fits(uid, suffix)]
        if not bulk:
            self.ensure_exists()
            return {uid: Created(self.href_for(uid), self.create(self.href_for(uid), data))
                    for uid, data in alone}
        self._put_collection(bulk)
        single_hrefs = {uid: self.href_for(uid) for uid, _ in alone}
        for uid, data in alone:
            self.create(single_hrefs[uid], data)
        listing = self.sync(None).changed
        mapping = map_bulk(
            [uid for uid, _ in bulk], suffix, self.path, listing,
            server_sorts=self.kind == "calendars",
        )
        created = dict(mapping.created)
        created.update({uid: Created(href, listing.get(href)) for uid, href in
                        single_hrefs.items()})
        if mapping.unmatched_uids:
            created.update(self._read_uids(mapping.unmatched_hrefs, set(mapping.unmatched_uids)))
        return created

    def _put_collection(self, bulk: Sequence[tuple[str, bytes]]) -> None:
        if self.kind == "contacts":
            body = vcard_body(bulk)
        else:
            body = calendar_body(bulk, self.displayname)
        response = self._client.request(
            "PUT", self.url,
            headers={"Content-Type": _MEDIA_TYPE[self.kind], "If-None-Match": "*"},
            content=body,
        )
        if response.status_code == 412:
            raise PreconditionFailed(
                f"PUT {self.url} refused (412): the collection appeared on the server "
                "meanwhile; run the sync again", 412,
            )
        if response.status_code // 100 != 2:
            raise self._client.failure("PUT (bulk create)", self.url, response)
        self.exists = True
        if self.kind == "contacts" and self.displayname:
            self._set_displayname(self.displayname)

    def _set_displayname(self, displayname: str) -> None:
        response = self._client.request(
            "PROPPATCH", self.url, headers=_XML, content=xb.proppatch_displayname(displayname)
        )
        if response.status_code // 100 != 2:
            raise self._client.failure("PROPPATCH", self.url, response)

    def _read_uids(self, hrefs: Sequence[str], wanted: set[str]) -> dict[str, Created]:
        """Fallback for names we could not predict: read the UIDs from the items themselves."""
        found: dict[str, Created] = {}
        for item in self.multiget(hrefs):
            uid = None if item.data is None else read_uid(item.data)
            if uid in wanted and uid is not None:
                found[uid] = Created(item.href, item.etag)
        missing = wanted - set(found)
        if missing:
            raise DavError(
                f"{self.url}: after the bulk upload {len(missing)} item(s) could not be found "
                f"on the server, e.g. UID {sorted(missing)[0]!r}"
            )
        return found
