"""HTTP recordings (`dav/recording.py`): what is redacted, and that recording changes nothing
about an exchange: answers stream to the caller and the size bound still cuts them off."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from davsync.cli import main
from davsync.dav.bounds import SMALL, AnswerTooLarge, read_bounded
from davsync.dav.http import http_client
from davsync.dav.recording import REDACTED, TEXT_KEEP, Recorder, Redactor, Replay, read_recording

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def test_headers_holding_secrets_are_redacted_and_the_s3_signature_keeps_its_shape() -> None:
    redactor = Redactor()
    for name in ("Authorization", "Cookie", "Set-Cookie", "X-Amz-Security-Token",
                 "x-amz-server-side-encryption-customer-key",
                 "x-amz-server-side-encryption-customer-key-MD5", "X-Auth-Token"):
        assert redactor.header(name, "s3cr3t-value") == REDACTED
    sigv4 = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/us-east-1/s3/aws4_request, "
             "SignedHeaders=host;x-amz-date, Signature=0123456789abcdef")
    assert redactor.header("Authorization", sigv4) == (
        f"AWS4-HMAC-SHA256 Credential={REDACTED}/20261130/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={REDACTED}")
    assert redactor.header("Content-Type", "text/vcard") == "text/vcard"


def test_query_strings_and_user_info_lose_their_secrets() -> None:
    url = Redactor().url(
        "https://bob:pw@s3.example/b/k?X-Amz-Credential=AKIDEXAMPLE%2F20261130%2Fus-east-1"
        "&X-Amz-Signature=sig0123&access_token=tok0123&device_code=dc0123&partNumber=2")
    assert "bob" not in url and "pw" not in url and "AKIDEXAMPLE" not in url
    assert "sig0123" not in url and "tok0123" not in url and "dc0123" not in url
    assert "partNumber=2" in url and "/20261130/us-east-1" in url


def test_bodies_lose_passwords_tokens_and_device_codes() -> None:
    redactor = Redactor()
    answer = json.dumps({"username": "alice", "password": "device-pw", "dav_url": "https://x/",
                         "nested": [{"refresh_token": "rt", "id_token": JWT}]}).encode()
    out = json.loads(redactor.body(answer, "application/json; charset=utf-8"))
    assert out == {"username": "alice", "password": REDACTED, "dav_url": "https://x/",
                   "nested": [{"refresh_token": REDACTED, "id_token": REDACTED}]}
    form = redactor.body(b"grant_type=device&device_code=dc-123&client_id=app",
                         "application/x-www-form-urlencoded")
    assert b"dc-123" not in form and b"client_id=app" in form
    assert JWT.encode() not in redactor.body(f"<x>{JWT}</x>".encode(), "text/xml")


def test_a_known_secret_is_taken_out_in_every_form() -> None:
    redactor = Redactor()
    redactor.add_secret("hunter2 and more")
    for form in (b"hunter2 and more", base64.b64encode(b"hunter2 and more"),
                 b"hunter2%20and%20more", b"hunter2+and+more"):
        assert form not in redactor.body(b"before " + form + b" after", "text/plain")


def _client(tmp_path: Path, handler: Any) -> tuple[httpx.Client, Recorder]:
    recorder = Recorder(tmp_path / "r.jsonl")
    client = http_client(verify=False, connect_timeout=1, read_timeout=1,
                         transport=httpx.MockTransport(handler),
                         wrap=recorder.transport_wrapper("dav"))
    return client, recorder


def test_recording_keeps_answers_streamed_and_bounded(tmp_path: Path) -> None:
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        for i in range(10_000):  # 640 MiB if it were all read
            pulled.append(i)
            yield b"x" * 65536

    client, recorder = _client(tmp_path, lambda _: httpx.Response(207, content=endless()))
    with client, pytest.raises(AnswerTooLarge):
        read_bounded(client.send(client.build_request("PROPFIND", "http://dav/"), stream=True),
                     SMALL)
    recorder.close()
    assert recorder.path.stat().st_mode & 0o777 == 0o600  # it holds the user's contacts
    assert len(pulled) <= SMALL.size // 65536 + 2  # cut off at the bound, as without recording
    [entry] = lines(recorder.path)
    body = entry["response"]["body"]
    assert body["incomplete"] and body["truncated"] and len(body["text"]) == TEXT_KEEP


def test_a_gzip_answer_is_recorded_decoded_and_replays(tmp_path: Path) -> None:
    answer = b"<multistatus>" + JWT.encode() + b"</multistatus>"
    client, recorder = _client(tmp_path, lambda _: httpx.Response(
        207, content=gzip.compress(answer), headers={"Content-Encoding": "gzip"}))
    with client:
        assert client.request("PROPFIND", "http://dav/a/").content == answer
    recorder.close()
    [entry] = lines(recorder.path)
    assert entry["response"]["body"]["text"] == f"<multistatus>{REDACTED}</multistatus>"
    replay = Replay(read_recording(recorder.path))
    with httpx.Client(transport=replay.transport("dav")) as again:
        assert again.request("PROPFIND", "http://dav/a/").text == entry["response"]["body"]["text"]
    assert replay.unused() == [] and replay.mismatches == []


def test_record_http_refuses_a_folder_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["--record-http", str(blocker / "sub"), "status"])
    assert result.exit_code == 2
    assert "--record-http" in result.output and "writable folder" in result.output
