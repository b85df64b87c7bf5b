"""How a DAV request that failed is told to the user: the davsync error each way of failing
ends in, naming the server (`origin`), the request (method and URL, never with userinfo) and
what to do, and the server's own short reason with every secret masked.

`DavClient` decides when a request has failed; the words are here, in one place, so that the
messages README quotes can be checked against one module.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Final

import httpx

from davsync.dav.api import DavAuthError, DavError, DavUnreachable
from davsync.dav.bounds import AnswerTooLarge
from davsync.dav.hrefs import origin as origin_of
from davsync.dav.hrefs import strip_userinfo
from davsync.dav.multistatus import error_conditions

_REASON_CHARS: Final = 200


def failure(
    origin: str, method: str, url: str, response: httpx.Response, secrets: Iterable[str],
    extra: str = "",
) -> DavError:
    """A DavError naming the request and the server's short reason, without secrets."""
    answer = f"HTTP {response.status_code}{extra}{_reason(response, secrets)}"
    return DavError(f"{method} {strip_userinfo(url)} on {origin}: {answer}",
                    response.status_code, answer)


def _reason(response: httpx.Response, secrets: Iterable[str]) -> str:
    conditions = error_conditions(response.content)
    if conditions:
        return ": " + ", ".join(sorted(c.rsplit("}", 1)[-1] for c in conditions))
    text = " ".join(response.text.split())
    for secret in secrets:
        text = text.replace(secret, "******")
    text = text[:_REASON_CHARS]
    return f": {text}" if text else ""


def refused_credentials(origin: str, username: str) -> DavAuthError:
    return DavAuthError(
        f"{origin} refused the credentials of user {username!r} (HTTP 401); "
        "check the username and password (or re-provision the device)"
    )


def overloaded(origin: str, method: str, url: str, status: int, attempts: int) -> DavUnreachable:
    return DavUnreachable(
        f"{origin}: {method} {strip_userinfo(url)} still answered HTTP "
        f"{status} after {attempts} attempt(s); the server is overloaded or "
        "down, try again later"
    )


def gave_up(
    origin: str, method: str, url: str, exc: httpx.TransportError, attempts: int
) -> DavUnreachable:
    return DavUnreachable(
        f"{origin}: {method} {strip_userinfo(url)} failed after "
        f"{attempts} attempt(s): {type(exc).__name__}. Check the server URL "
        "and that the server is running and reachable."
    )


def tls_failure(exc: BaseException) -> str | None:
    """What the TLS layer said, when that is why a request failed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate not trusted ({seen.verify_message})"
        if isinstance(seen, ssl.SSLError):
            return seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def tls_refused(origin: str, refused: str) -> DavUnreachable:
    return DavUnreachable(
        f"{origin}: TLS failed: {refused}. If the server's certificate "
        "comes from a private CA, point SSL_CERT_FILE at that CA's certificate; "
        "[server] verify_tls = false turns the check off."
    )


def overdue(origin: str, method: str, url: str, request_timeout: float) -> DavUnreachable:
    return DavUnreachable(
        f"{origin}: {method} {strip_userinfo(url)} did not finish within "
        f"{request_timeout:g} s; the server stalled or is far too slow. The run "
        "stopped and keeps what it finished; try again later (or raise [server] "
        "request_timeout)."
    )


def too_large(origin: str, method: str, url: str, exc: AnswerTooLarge) -> DavError:
    return DavError(
        f"{method} {strip_userinfo(url)} on {origin}: the answer is larger than "
        f"{exc}; not read further"
    )


def connection_lost(origin: str, method: str, url: str, what: str) -> DavUnreachable:
    """`what`: the failure's name (an exception's type), never its text."""
    return DavUnreachable(
        f"{origin}: {method} {strip_userinfo(url)} lost the connection while "
        f"reading the answer ({what}); try again later"
    )


def off_origin(configured: str, url: str) -> DavError:
    return DavError(
        f"{configured} pointed davsync at {strip_userinfo(url)}, on another server; "
        f"credentials and data are only sent to the configured {configured}. If that "
        "server is the right one, configure it as [server] url."
    )


def redirected_off_origin(url: str, target: str) -> DavError:
    return DavError(
        f"{strip_userinfo(url)} redirects to another server ({origin_of(target)}); "
        "credentials are only sent to the configured one: configure that URL instead"
    )


def too_many_redirects(url: str, most: int) -> DavError:
    return DavError(f"{strip_userinfo(url)}: more than {most} redirects")
