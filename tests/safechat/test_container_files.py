"""The Dockerfile and the compose file, checked as far as this machine can without a
Docker engine: the compose file against the Compose specification's JSON schema (as
vendored by check-jsonschema), the Dockerfile with hadolint, and the properties promised
in docs/operations.md read from both."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.fixtures import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE = PROJECT_ROOT / "deploy" / "compose" / "compose.yaml"
APP_SERVICES = ("migrate", "web", "worker", "beat")


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _final_stage() -> str:
    text = DOCKERFILE.read_text()
    return text[text.rindex("\nFROM ") :]


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), str(DOCKERFILE)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_installs_the_locked_requirements_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    final = _final_stage()

    # the locked requirements, every hash checked, nothing resolved at build time
    assert "COPY requirements/base.txt" in text
    assert re.search(r"pip install --require-hashes --no-deps -r \S+", text)
    # the final stage: no compiler, no pip install, a numeric non-root user last
    assert not re.search(r"build-essential|gcc|\bmake\b|pip install", final)
    users = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert users == ["10001:10001"]
    # the virtual environment comes from the build stage
    assert "COPY --from=build /opt/safechat/.venv /opt/safechat/.venv" in final


def test_every_safechat_container_runs_read_only_unprivileged_and_names_itself() -> None:
    services = _compose()["services"]

    assert set(services) >= {"postgres", "redis", "clamav", *APP_SERVICES}
    for name in APP_SERVICES:
        service = services[name]
        assert service["read_only"] is True, name
        assert service["user"] == "10001:10001", name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["environment"]["SAFECHAT_SERVICE"] == name, name
    # the web port is for the proxy on the compose network only
    assert "ports" not in services["web"]
    # web, worker and beat share the metrics folder (prometheus_client multiprocess mode)
    assert all("metrics:/run/safechat-metrics" in services[n]["volumes"] for n in APP_SERVICES)
    # the key material comes as secrets, never in the environment file
    example = (COMPOSE.parent / "safechat.env.example").read_text()
    assert "SAFECHAT_MASTER_KEY_FILE=/run/secrets/master_keys" in example
    assert "PROMETHEUS_MULTIPROC_DIR=/run/safechat-metrics" in example
