"""Shared fixtures: each real server lives in its own plugin module under tests/fixtures/.

Under CI (`CI` set) Hypothesis replays the same examples on every run, so a landing is judged
on the code and never on which random examples were drawn; a developer's `make test` keeps
searching new ones, and what it finds becomes a fixed example or a fix.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.radicale",
    "tests.fixtures.davsync_server",
    "tests.fixtures.seaweed",
    "tests.fixtures.tls",
    "tests.fixtures.proxy",
    "tests.fixtures.xandikos",
]
