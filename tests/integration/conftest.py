"""Fixtures of the two-way suite, shared by every test module that syncs against real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_sync_radicale import Account, Device


@pytest.fixture(params=["radicale", "xandikos"])
def account(request: pytest.FixtureRequest) -> Account:
    """A fresh account on each real server the two-way suite runs against."""
    name = "dav_account" if request.param == "radicale" else "xandikos_account"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def device(tmp_path: Path, account: Account) -> Device:
    return Device(tmp_path / "device", account)
