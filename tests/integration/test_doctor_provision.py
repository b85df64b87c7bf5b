"""`davsync doctor` with `auth = "provision"` against a real davsync server: it provisions only
when no credentials are stored (and says so), and reports a refused device instead of quietly
provisioning a new one over it."""

from __future__ import annotations

import json

from davsync.credentials.store import load_device
from tests.fixtures.davsync_server import DavsyncServer
from tests.integration.test_cred_provision import Installation, install

__all__ = ["install"]  # the fixture


def doctor(inst: Installation) -> tuple[int, dict[str, list[tuple[str, str]]]]:
    result = inst.run("doctor", "--json")
    out = json.loads(result.output)
    checks: dict[str, list[tuple[str, str]]] = {}
    for c in out["checks"]:
        checks.setdefault(c["check"], []).append((c["status"], c["detail"]))
    return result.exit_code, checks


def test_doctor_provisions_only_missing_credentials_and_reports_a_refused_device(
    install: Installation, davsync_server: DavsyncServer,
) -> None:
    code, checks = doctor(install)
    creds = load_device(install.store)
    assert creds is not None
    assert install.provisions() == 1
    assert checks["auth"] == [
        ("note", f"no device credentials were stored: provisioned this device "
                 f"({creds.device_id}) as {creds.username!r} for {creds.dav_url}"),
        ("ok", f"provision as {creds.username!r}"),
    ]
    assert code == 0, checks

    code, checks = doctor(install)
    assert checks["auth"] == [("ok", f"provision as {creds.username!r}")]
    assert install.provisions() == 1

    davsync_server.revoke(creds.username, creds.device_id)
    code, checks = doctor(install)
    assert code == 1
    assert [status for status, _ in checks["auth"]] == ["fail"]
    assert "refused the credentials" in checks["auth"][0][1]
    assert install.provisions() == 1  # not re-provisioned behind the user's back
    assert load_device(install.store) == creds
