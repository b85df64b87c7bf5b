"""DavClient.request: retries, Retry-After, one credential refresh, counting, no secrets.

httpx.MockTransport stands in for the network here only: these tests are about the client's
own request loop, not about what a DAV server answers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import httpx
import pytest

from davsync.dav.api import DavAuthError, DavError, DavUnreachable, RequestCounter
from davsync.dav.client import DavClient
from davsync.secret import Secret

URL = "http://127.0.0.1:9/dav/"
PASSWORD = "hunter2-very-secret"


class RotatingAuth:
    """Hands out a new password on each refresh, as many times as the test allows."""

    def __init__(self, refreshes: list[bool]) -> None:
        self.passwords = [PASSWORD, "second-secret"]
        self.refreshes = refreshes
        self.calls = 0

    def credentials(self) -> tuple[str, Secret]:
        return "alice", Secret(self.passwords[min(self.calls, 1)])

    def refresh(self) -> bool:
        self.calls += 1
        return self.refreshes.pop(0)


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    auth: RotatingAuth | None = None,
    **kwargs: object,
) -> tuple[DavClient, RequestCounter, list[float]]:
    counter = RequestCounter()
    slept: list[float] = []
    client = DavClient(
        URL, auth or RotatingAuth([]), counter=counter, sleep=slept.append,
        transport=httpx.MockTransport(handler), **kwargs,  # type: ignore[arg-type]
    )
    return client, counter, slept


def answers(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    queue: Iterator[httpx.Response | Exception] = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(queue)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_503_honours_retry_after_then_succeeds() -> None:
    client, counter, slept = client_for(answers(
        httpx.Response(503, headers={"Retry-After": "7"}),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(204),
    ))
    assert client.request("DELETE", URL + "x.vcf").status_code == 204
    assert counter.count == 3 and counter.by_method == {"DELETE": 3}
    assert slept == [7.0, 1.0]


def test_5xx_gives_up_with_status_after_max_retries() -> None:
    client, counter, slept = client_for(answers(*[httpx.Response(500, text="boom")] * 3),
                                        max_retries=2)
    with pytest.raises(DavError, match=r"HTTP 500 after 3 attempt\(s\): boom") as info:
        client.request("PUT", URL + "x.vcf")
    assert info.value.status == 500 and counter.count == 3 and len(slept) == 2


def test_503_forever_means_unreachable() -> None:
    client, counter, _ = client_for(answers(*[httpx.Response(503)] * 2), max_retries=1)
    with pytest.raises(DavUnreachable, match="overloaded or down"):
        client.request("REPORT", URL)
    assert counter.count == 2


def test_connection_errors_retry_then_unreachable() -> None:
    refused = httpx.ConnectError("refused")
    client, counter, slept = client_for(answers(refused, httpx.ReadTimeout("slow"), refused),
                                        max_retries=2)
    with pytest.raises(DavUnreachable, match=r"127\.0\.0\.1:9.*3 attempt"):
        client.request("PROPFIND", URL)
    assert counter.count == 3 and len(slept) == 2 and all(d > 0 for d in slept)


def test_server_errors_not_retried_when_bisecting() -> None:
    client, counter, _ = client_for(answers(httpx.Response(500)))
    assert client.request("REPORT", URL, retry_server_errors=False).status_code == 500
    assert counter.count == 1


def test_401_refreshes_once_and_retries_with_new_credentials() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(401 if len(seen) == 1 else 207)

    auth = RotatingAuth([True])
    client, counter, _ = client_for(handler, auth)
    assert client.request("PROPFIND", URL).status_code == 207
    assert counter.count == 2 and auth.calls == 1
    decoded = [base64.b64decode(h.split()[1]).decode() for h in seen]
    assert decoded == [f"alice:{PASSWORD}", "alice:second-secret"]


def test_401_after_refresh_is_an_auth_error_and_refresh_is_not_repeated() -> None:
    auth = RotatingAuth([True])
    client, counter, _ = client_for(answers(*[httpx.Response(401)] * 3), auth)
    with pytest.raises(DavAuthError):
        client.request("PROPFIND", URL)
    assert counter.count == 2
    with pytest.raises(DavAuthError):
        client.request("PROPFIND", URL)
    assert counter.count == 3 and auth.calls == 1


def test_refresh_false_raises_at_once_and_is_never_asked_again() -> None:
    auth = RotatingAuth([False])
    client, counter, _ = client_for(answers(*[httpx.Response(401)] * 2), auth)
    for expected_count in (1, 2):
        with pytest.raises(DavAuthError, match=r"127\.0\.0\.1:9 refused .*'alice'") as info:
            client.request("PROPFIND", URL)
        assert counter.count == expected_count
        assert PASSWORD not in str(info.value)
    assert auth.calls == 1


def test_a_new_run_on_the_same_client_may_refresh_once_again() -> None:
    """A daemon keeps one client: a device revoked hours later is re-provisioned then."""
    auth = RotatingAuth([True, True])
    statuses = [401, 207, 401, 207]
    client, counter, _ = client_for(answers(*[httpx.Response(s) for s in statuses]), auth)
    assert client.request("PROPFIND", URL).status_code == 207
    client.new_run()
    assert client.request("PROPFIND", URL).status_code == 207
    assert auth.calls == 2 and counter.count == 4


def test_errors_never_echo_the_password_or_authorization() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"bad request, headers: {request.headers['authorization']}"
                              f" password={PASSWORD}")

    client, _, _ = client_for(handler)
    response = client.request("PUT", URL + "x.vcf")
    error = client.failure("PUT", URL + "x.vcf", response)
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert PASSWORD not in str(error) and token not in str(error)
    assert "HTTP 400" in str(error) and "x.vcf" in str(error)


def test_credentials_in_the_url_never_reach_messages() -> None:
    client, _, _ = client_for(answers(httpx.ConnectError("x")), max_retries=0)
    client.url = "http://alice:pw@127.0.0.1:9/dav/"
    with pytest.raises(DavUnreachable) as info:
        client.request("PROPFIND", "http://alice:pw@127.0.0.1:9/dav/")
    assert "pw" not in str(info.value)


def test_redirects_followed_only_on_the_same_server() -> None:
    client, counter, _ = client_for(answers(
        httpx.Response(301, headers={"Location": "/"}),
        httpx.Response(207),
        httpx.Response(301, headers={"Location": "http://evil.example/"}),
    ))
    response = client.request("PROPFIND", URL + ".well-known/carddav", follow_redirects=True)
    assert response.status_code == 207 and str(response.request.url) == "http://127.0.0.1:9/"
    with pytest.raises(DavError, match="another server"):
        client.request("PROPFIND", URL, follow_redirects=True)
    assert counter.count == 3
