"""What a user's `pip install davsync` gets: the wheel carries the samples and example configs
(so `davsync demo` works outside a checkout), and Radicale only with the `server` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Built from a copy of the checkout: a build writes build/ and *.egg-info beside the
    sources, which must not appear in the checkout the other tests (and ruff, mypy) read."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    ignore = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "demo-run",
                                    "results", "tests")
    shutil.copytree(ROOT, source, symlinks=True, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True)
    (path,) = out.glob("davsync-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_ships_the_samples_and_example_configs(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    samples = ROOT / "davsync" / "samples"
    shipped = {p.relative_to(ROOT).as_posix() for p in samples.rglob("*") if p.is_file()}
    assert len(shipped) > 40
    assert shipped <= names
    assert {"davsync/examples/davsync.example.toml",
            "davsync/examples/server.example.toml"} <= names


def test_radicale_comes_only_with_the_server_extra(wheel: zipfile.ZipFile) -> None:
    (meta_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    meta = Parser().parsestr(wheel.read(meta_name).decode())
    requires = meta.get_all("Requires-Dist") or []
    radicale = [r for r in requires if r.lower().startswith("radicale")]
    assert radicale and all('extra == "server"' in r for r in radicale)
    caldav = [r for r in requires if r.lower().startswith("caldav")]
    assert caldav and all('extra == "test"' in r for r in caldav)
    (entry_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "davsync = davsync.cli:entry" in wheel.read(entry_name).decode()
