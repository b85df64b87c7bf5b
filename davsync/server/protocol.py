"""The provisioning protocol's request parsing and error answers (docs/provisioning.md). Pure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PROVISION_PATH = "/.well-known/davsync/provision"
REVOKE_PATH = "/.well-known/davsync/revoke"
APP_PASSWORD_PATH = "/.well-known/davsync/app-password"  # noqa: S105 (a path)
DEFAULT_APP_LABEL = "app password"
MAX_BODY = 64 * 1024

_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ProtocolError(Exception):
    """An error answer: HTTP `status` with JSON {"error": code, "error_description": ...}."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def malformed(description: str) -> ProtocolError:
    return ProtocolError(400, "invalid_request", description)


@dataclass(frozen=True)
class ProvisionRequest:
    assertion: str
    device_id: str
    device_name: str


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise malformed("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise malformed("the request body must be a JSON object")
    return data


def parse_assertion(data: dict[str, Any]) -> str:
    assertion = data.get("assertion")
    if not isinstance(assertion, str) or not assertion.strip():
        raise malformed("'assertion' (the ID token, a JWT string) is required")
    return assertion.strip()


def parse_provision(body: bytes) -> ProvisionRequest:
    """Validate a provisioning request; unknown fields are ignored (newer clients)."""
    data = parse_json_object(body)
    assertion = parse_assertion(data)
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
        raise malformed(
            "'device_id' is required: 1-128 characters of letters, digits and . _ : -"
        )
    return ProvisionRequest(assertion, device_id, _name(data, "device_name", device_id))


@dataclass(frozen=True)
class AppPasswordRequest:
    assertion: str
    label: str


def parse_app_password(body: bytes) -> AppPasswordRequest:
    """`{"assertion", "label"}`: the label names the client, e.g. "Pixel DAVx5"."""
    data = parse_json_object(body)
    return AppPasswordRequest(parse_assertion(data), _name(data, "label", DEFAULT_APP_LABEL))


def check_name(value: object, key: str) -> str:
    """A device name or app-password label: printable, 1-200 characters, trimmed."""
    if (not isinstance(value, str) or not value.strip() or len(value) > 200
            or _CONTROL.search(value)):
        raise malformed(f"'{key}' must be a printable string of 1-200 characters")
    return value.strip()


def _name(data: dict[str, Any], key: str, default: str) -> str:
    return check_name(data.get(key, default), key)


def allowed(
    sub: str,
    email: str | None,
    email_verified: bool,
    subjects: tuple[str, ...],
    domains: tuple[str, ...],
) -> bool:
    """The issuer's sign-up policy: no lists means anyone the issuer vouches for."""
    if not subjects and not domains:
        return True
    if sub in subjects:
        return True
    if email and email_verified and "@" in email:
        return email.rsplit("@", 1)[1].lower() in domains
    return False
