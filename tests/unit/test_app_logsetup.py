"""Logging set-up: formats for a terminal and for journald, verbosity, and redaction."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from davsync.app.logsetup import (
    MASK,
    JournalFormatter,
    StderrHandler,
    TerminalFormatter,
    configure_logging,
    redact,
    syslog_priority,
    under_journald,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
LIBRARIES = ("httpx", "httpcore", "botocore", "boto3", "s3transfer")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the other tests."""
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.setLogRecordFactory(factory)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Basic YWxpY2U6aHVudGVyMg==", "YWxpY2U6aHVudGVyMg=="),
    ("headers={'Authorization': 'Bearer abc.def.ghi', 'Depth': '0'}", "abc.def.ghi"),
    ("[(b'authorization', b'Basic YWxpY2U6aHVudGVyMg==')]", "YWxpY2U6aHVudGVyMg=="),
    ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Zm9vOmJhcg=="),
    ("Set-Cookie: session=abcdef123; HttpOnly", "abcdef123"),
    ("{'x-amz-server-side-encryption-customer-key': 'a2V5LW1hdGVyaWFs'}", "a2V5LW1hdGVyaWFs"),
    ("GET https://alice:hunter2@dav.example.org/alice/ failed", "hunter2"),
    ("url = http://bob:p%40ss@127.0.0.1:5232/", "p%40ss"),
    ("POST /token?client_secret=s3cr3t-value&grant_type=device_code", "s3cr3t-value"),
    ('answer {"password": "hunter2", "username": "alice"}', "hunter2"),
    ("{'password': 'it\\'s-hunter2'}", "hunter2"),
    ("password='hunter2'", "hunter2"),
    ("access_token=ya29.a0Af refresh_token=1//0gXyZ", "ya29.a0Af"),
    ("access_token=ya29.a0Af refresh_token=1//0gXyZ", "1//0gXyZ"),
    (f"assertion: {JWT}", JWT),
    (f"the issuer sent {JWT} back", JWT),
    ("Bearer abcdefghijklmnopqrstuvwxyz0123", "abcdefghijklmnopqrstuvwxyz0123"),
    ("{'secret_key': 'wJalrXUtnFEMI/K7MDENG'}", "wJalrXUtnFEMI/K7MDENG"),
    ("aws_secret_access_key=wJalrXUtnFEMI", "wJalrXUtnFEMI"),
    ("passphrase=correct-horse", "correct-horse"),
])
def test_secrets_are_masked(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted and MASK in redacted, redacted


@pytest.mark.parametrize("text", [
    "contacts: sync token no longer valid; doing a full listing",
    "sync_token=http://radicale.org/ns/sync/5b3c sync-token=x",
    "config.toml [server] password_command: exited with status 1",
    "/home/alice/.config/davsync/config.toml holds [server] password and other users can read "
    "it: run `chmod 600 /home/alice/.config/davsync/config.toml`",
    "early probe: PROPFIND http://127.0.0.1:5232/alice/contacts/ -> 207",
    'HTTP Request: PUT http://127.0.0.1:5232/alice/contacts/a.vcf "HTTP/1.1 201 Created"',
    "https://dav.example.org:8443/alice@example.org/contacts/ answered 404",
    "Basic authentication failed for alice; no cookie sent",
    "the DAV server refused this device's credentials; provisioning again",
    "backup: photos/2024/img.jpg: key=photos/2024/img.jpg uploaded",
])
def test_what_helps_debugging_stays(text: str) -> None:
    assert redact(text) == text


def test_every_record_is_redacted_before_any_handler_sees_it(
    restore_logging: None, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_logging(2, environ={})
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("davsync.test")
    log.debug("sending %s", {"Authorization": "Basic YWxpY2U6aHVudGVyMg=="})
    logging.getLogger("httpx").info("HTTP Request: GET https://alice:hunter2@h/ \"200 OK\"")
    try:
        raise ValueError(f"refused token {JWT}")
    except ValueError:
        log.exception("provisioning failed")
    log.warning("refused", extra={"url": "https://alice:hunter2@h/", "attempt": 2})
    log.debug("stack", stack_info=True, extra={"note": "password=hunter2"})
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: refused token ******" in err
    assert "HTTP Request: GET https://alice:******@h/" in err
    assert 'url=https://alice:******@h/ attempt=2' in err
    everything = err + caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in ("YWxpY2U6aHVudGVyMg==", "hunter2", JWT):
        assert secret not in err
        assert secret not in caplog.text
    assert len(caplog.records) == 5 and "YWxpY2U6aHVudGVyMg==" not in everything


def test_arguments_that_do_not_fit_keep_the_format_and_drop_the_values(
    restore_logging: None, capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(0, environ={})
    logging.getLogger("davsync.test").warning("only %s here", "hunter2", "extra")
    assert capsys.readouterr().err == (
        "WARNING davsync.test: only %s here (log arguments did not fit the message)\n")


@pytest.mark.parametrize(("verbose", "shown"), [
    (0, {"davsync warning"}),
    (1, {"davsync warning", "davsync info"}),
    (2, {"davsync warning", "davsync info", "davsync debug", "httpx info"}),
    (5, {"davsync warning", "davsync info", "davsync debug", "httpx info"}),
])
def test_verbosity(restore_logging: None, capsys: pytest.CaptureFixture[str], verbose: int,
                   shown: set[str]) -> None:
    """-v: davsync's items; -vv: debug and httpx's one line per request, never httpcore's
    connection traces (which carry response headers) or botocore's header dumps."""
    configure_logging(verbose, environ={})
    for name in ("davsync", "httpx", "httpcore", "botocore"):
        logger = logging.getLogger(f"{name}.test" if name == "davsync" else name)
        logger.warning("%s warning", name)
        logger.info("%s info", name)
        logger.debug("%s debug", name)
    lines = capsys.readouterr().err.splitlines()
    got = {line.split(": ", 1)[1] for line in lines}
    expected = shown | {"httpx warning", "httpcore warning", "botocore warning"}
    expected |= {"botocore info"} if verbose else set()
    assert got == expected


def test_configuring_twice_leaves_one_handler(restore_logging: None) -> None:
    configure_logging(0, environ={})
    configure_logging(1, environ={})
    assert sum(isinstance(h, StderrHandler) for h in logging.getLogger().handlers) == 1


def record(level: int, msg: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("davsync.sync", level, __file__, 1, msg, None, None)
    made.__dict__.update(extra)
    return made


def test_terminal_lines_are_as_before_plus_fields() -> None:
    formatter = TerminalFormatter()
    assert formatter.format(record(logging.WARNING, "x.vcf: refused")) == (
        "WARNING davsync.sync: x.vcf: refused")
    assert formatter.format(record(logging.INFO, "uploaded", collection="contacts",
                                   href="/alice/my card.vcf")) == (
        'INFO davsync.sync: uploaded collection=contacts href="/alice/my card.vcf"')


def test_journal_lines_carry_the_priority_and_stay_one_line() -> None:
    formatter = JournalFormatter()
    assert formatter.format(record(logging.WARNING, "x.vcf: refused", collection="contacts")
                            ) == "<4>x.vcf: refused logger=davsync.sync collection=contacts"
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        failed = record(logging.ERROR, "run failed\nsecond line")
        failed.exc_info = (type(exc), exc, exc.__traceback__)
    line = formatter.format(failed)
    assert "\n" not in line and line.startswith("<3>run failed\\nsecond line\\nTraceback")
    assert line.endswith("RuntimeError: boom logger=davsync.sync")


@pytest.mark.parametrize(("level", "priority"), [
    (logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6),
    (logging.DEBUG, 7), (5, 7),
])
def test_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_journald_is_recognised_by_the_stream_it_gave_us(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w", encoding="utf-8") as stream:
        st = os.fstat(stream.fileno())
        assert under_journald(stream, f"{st.st_dev}:{st.st_ino}")
        assert not under_journald(stream, f"{st.st_dev}:{st.st_ino + 1}")
        assert not under_journald(stream, "")
        assert not under_journald(stream, "garbage")
    assert not under_journald(io.StringIO(), f"{st.st_dev}:{st.st_ino}")
