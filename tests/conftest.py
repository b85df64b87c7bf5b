"""Shared fixtures: each real server lives in its own plugin module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.radicale",
    "tests.fixtures.davsync_server",
    "tests.fixtures.seaweed",
    "tests.fixtures.tls",
    "tests.fixtures.hostile",
    "tests.fixtures.xandikos",
]
