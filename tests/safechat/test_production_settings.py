"""Production mode refuses to start on each insecure setting, with its own reason."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from safechat import environment
from tests.support.fixtures import PROJECT_ROOT, project_env


def good_production_env(tmp_path: Path) -> dict[str, str]:
    return project_env(
        tmp_path,
        SAFECHAT_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        DEBUG="0",
        ALLOWED_HOSTS="chat.bank.example",
        SAFECHAT_MASTER_KEYS="1:" + base64.b64encode(os.urandom(32)).decode(),
        SAFECHAT_AUDIT_SIGNING_KEY=base64.b64encode(os.urandom(32)).decode(),
    )


def run_django(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda env: without(env, "SECRET_KEY"), "SECRET_KEY is not set"),
        (lambda env: {**env, "SECRET_KEY": "short-secret"}, "SECRET_KEY is weak"),
        (lambda env: {**env, "SECRET_KEY": "a" * 60}, "SECRET_KEY is weak"),
        (
            lambda env: {**env, "SECRET_KEY": "django-insecure-" + secrets.token_urlsafe(50)},
            "SECRET_KEY is weak",
        ),
        (lambda env: {**env, "DEBUG": "1"}, "DEBUG is on"),
        (lambda env: without(env, "ALLOWED_HOSTS"), "ALLOWED_HOSTS is empty"),
        (lambda env: {**env, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS contains a wildcard"),
        (
            lambda env: {**env, "ALLOWED_HOSTS": "chat.bank.example,*.bank.example"},
            "ALLOWED_HOSTS contains a wildcard",
        ),
        (lambda env: without(env, "SAFECHAT_MASTER_KEYS"), "no master key is configured"),
        (
            lambda env: without(env, "SAFECHAT_AUDIT_SIGNING_KEY"),
            "no audit signing key is configured",
        ),
    ],
)
def test_production_refuses_each_insecure_setting_with_its_own_one_line_reason(
    tmp_path: Path, change: object, reason: str
) -> None:
    # given a production environment with exactly one insecure setting
    env = change(good_production_env(tmp_path))  # type: ignore[operator]

    # when Django starts
    result = run_django(env, "check")

    # then it refuses, on one line naming the reason, without a traceback
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("SafeChat refuses to start in production: ")
    assert reason in lines[0]
    assert "Traceback" not in result.stderr


def test_production_with_a_correct_environment_passes_check_deploy(tmp_path: Path) -> None:
    # given a complete, safe production environment
    env = good_production_env(tmp_path)

    # when the deployment checklist runs, failing on any warning
    result = run_django(env, "check", "--deploy", "--fail-level", "WARNING")

    # then it reports no issue at all
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_does_not_generate_secrets_into_the_data_folder(tmp_path: Path) -> None:
    # given a production environment
    env = good_production_env(tmp_path)

    # when Django starts
    run_django(env, "check")

    # then no development secret was written to disk
    data_dir = Path(env["SAFECHAT_DATA_DIR"])
    assert not (data_dir / "secret_key").exists()
    assert not (data_dir / "master-keys.json").exists()


def test_development_generates_a_secret_key_once_with_owner_only_permissions(
    tmp_path: Path,
) -> None:
    # when a development secret is asked for twice
    first = environment.development_secret(tmp_path, "secret_key")
    second = environment.development_secret(tmp_path, "secret_key")

    # then it is strong, stable and readable by the owner only
    assert first == second
    assert not environment.secret_is_weak(first)
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_an_unknown_environment_name_is_refused(tmp_path: Path) -> None:
    result = run_django(project_env(tmp_path, SAFECHAT_ENV="prod"), "check")

    assert result.returncode != 0
    assert "SAFECHAT_ENV must be one of development, production" in result.stderr
