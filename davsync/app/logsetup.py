"""Logging for the client commands (and the daemon to come), configured in this one place.

- On a terminal (or any stderr that is not the journal): `LEVEL logger: message`, the lines
  users have always seen, then any `key=value` fields the record carries (`extra=`).
- Under journald (`JOURNAL_STREAM` names the device and inode of our stderr, as systemd sets
  for `StandardError=journal`): one line per event, `<N>message logger=NAME key=value`, where N
  is the syslog priority journald reads from the prefix (sd-daemon(3)); a traceback's newlines
  are escaped so that it stays one entry instead of one entry per line.
- Verbosity: warnings by default; `-v` adds davsync's information (each item synced, skipped
  or in conflict); `-vv` adds debug and one line per HTTP request, never a request or answer
  body (httpcore's connection traces and botocore's header dumps stay quiet).
- Redaction: every log record, at every level and from every library, is stripped of
  secrets before any handler sees it (`Redactor`, installed at record creation). Secrets have
  their own type (`Secret`) so they are never logged on purpose; this catches the accidents:
  an Authorization header, a `password=` in a query, a `user:pass@` URL, a token in a repr.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

MASK = "******"  # as `Secret` prints itself

_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


def _library_levels(verbose: int) -> dict[str, int]:
    """Third-party loggers whose chatter is not what `-v`/`-vv` promise: httpx's request lines
    only with `-vv`; botocore's debug would print request headers, and with SSE-C one of
    them is the key (redaction masks it too, but it is noise either way)."""
    aws = logging.INFO if verbose >= 1 else logging.WARNING
    return {
        "httpx": logging.INFO if verbose >= 2 else logging.WARNING,
        "httpcore": logging.WARNING,
        "botocore": aws,
        "boto3": aws,
        "s3transfer": aws,
    }


# `[log] level` as the -v count it stands for (error: quieter than the default).
_VERBOSITY_OF_LEVEL = {"error": -1, "warning": 0, "info": 1, "debug": 2}


def configure_logging(verbose: int, environ: Mapping[str, str] | None = None, *,
                      level: str | None = None, log_format: str = "auto",
                      timestamps: bool = False) -> None:
    """Installs davsync's handler on the root logger (replacing one installed before, so that
    calling this twice in one process, as tests do, leaves one) and the redaction.

    `level` and `log_format` are `[log]`'s (read by `davsync run`): -v/-vv, when given, win
    over `level`; `log_format` "text" or "journal" forces that format, "auto" picks the
    journal's under journald. `timestamps`: text lines start with the time (a long-running
    server's log read from a file; the journal has its own)."""
    install_redaction()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    handler = StderrHandler()
    env = os.environ if environ is None else environ
    journal = log_format == "journal" or (
        log_format == "auto" and under_journald(sys.stderr, env.get("JOURNAL_STREAM", "")))
    handler.setFormatter(JournalFormatter() if journal else TerminalFormatter(timestamps))
    root.addHandler(handler)
    if verbose <= 0 and level is not None:
        verbose = _VERBOSITY_OF_LEVEL[level]
    root.setLevel(logging.ERROR if verbose < 0 else _LEVELS[min(verbose, len(_LEVELS) - 1)])
    for name, lib_level in _library_levels(verbose).items():
        logging.getLogger(name).setLevel(lib_level)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when the record is emitted (as logging's last
    resort does), so a test or a click runner that swaps stderr still gets the lines."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def under_journald(stream: TextIO, journal_stream: str) -> bool:
    """True when `stream` is the journal's socket: systemd sets JOURNAL_STREAM=dev:ino for
    it, and a child whose stderr was redirected elsewhere inherits the variable but not the
    socket, hence the comparison."""
    dev, _, ino = journal_stream.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no file behind it (a test's buffer)
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


# -- formatting --------------------------------------------------------------------------------

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_BARE = re.compile(r'[^\s"=\\]+')


def fields(record: logging.LogRecord) -> Iterator[str]:
    """`key=value` for each field passed with `extra=`, quoted when the value has spaces."""
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        text = redact(str(value))  # extras are set after the record factory has run
        yield f"{key}={text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)}"


class TerminalFormatter(logging.Formatter):
    """`WARNING davsync.config: message key=value`: what a person reads on a terminal."""

    def __init__(self, timestamps: bool = False) -> None:
        super().__init__(("%(asctime)s " if timestamps else "")
                         + "%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return " ".join([super().formatMessage(record), *fields(record)])


def syslog_priority(levelno: int) -> int:
    """The sd-daemon(3) prefix for a level: err 3, warning 4, info 6, debug 7."""
    for floor, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                            (logging.INFO, 6)):
        if levelno >= floor:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """`<4>message logger=davsync.config key=value`: one journal entry per event, its
    priority in the prefix, the timestamp and unit added by journald."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\r\n", "\n").replace("\n", "\\n")
        tail = " ".join([f"logger={record.name}", *fields(record)])
        return f"<{syslog_priority(record.levelno)}>{text} {tail}"


# -- redaction ---------------------------------------------------------------------------------

# Names whose value is a secret wherever it appears as name=value or "name": "value". The whole
# name must end in one of these words, so `password_command` and `sync_token` (the RFC 6578
# collection version, needed to debug a sync) stay readable.
_HIDDEN_NAME = (r"(?:[\w-]*[_-])?(?<!sync[_-])(?:password|passwd|passphrase|secret|token|"
                r"assertion|api[_-]?key|secret[_-]?key|secret[_-]?access[_-]?key|"
                r"private[_-]?key|customer[_-]?key|credentials?)")
# HTTP headers whose whole value is a secret (header form: `Name: value`, also in reprs).
_HIDDEN_HEADER = (r"(?:proxy-)?authorization|cookie|set-cookie|"
                  r"x-amz-server-side-encryption-customer-key|x-amz-security-token")

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host: the user stays, the password goes
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"]*):[^/\s@'\"]*@"), rf"\1:{MASK}@"),
    # headers, also as ('authorization', 'Basic ...') or {"Authorization": "Bearer ..."}
    (re.compile(rf"(?i)(\b(?:{_HIDDEN_HEADER})(?:['\"]\s*[:,]\s*b?['\"]|\s*:\s*b?['\"]?))"
                r"[^'\"\r\n]+"), rf"\1{MASK}"),
    # "password": "x", 'token': 'x', password="x"
    (re.compile(rf"(?i)(\b{_HIDDEN_NAME}['\"]?\s*[:=]\s*b?(?P<v>['\"]))"
                r"(?:\\.|(?!(?P=v)).)*"), rf"\1{MASK}"),
    # password=x, ?token=x&..., client_secret=x (logfmt, query strings)
    (re.compile(rf"(?i)(\b{_HIDDEN_NAME}=)[^\s&'\",;]+"), rf"\1{MASK}"),
    # a bearer token or a JWT (an ID token, a signed assertion) on its own
    (re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/-]{16,}=*"), rf"\1{MASK}"),
    (re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), MASK),
)


def redact(text: str) -> str:
    """`text` with every secret this module recognises replaced by ******."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class Redactor(logging.Filter):
    """Removes secrets from a record in place: its message (arguments merged in), its
    traceback, its stack and its extra fields. Always lets the record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: keep the format, drop the values
            message = f"{record.msg} (log arguments did not fit the message)"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not isinstance(value, int | float | bool | None):
                setattr(record, key, redact(str(value)))
        return True


class _RedactingFactory:
    """Wraps the log record factory: every record is redacted as it is made, so no handler,
    ours or a library's or a test's, ever sees the secret."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner
        self.redactor = Redactor()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        self.redactor.filter(record)
        return record


def install_redaction() -> None:
    """Makes every log record of this process pass through `Redactor` (once)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
