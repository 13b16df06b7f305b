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
from safechat.crypto.providers import provider_kind
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
        # Never connected to by `check`: only named.
        DATABASE_URL="postgres://safechat_app@db.bank.example:5432/safechat",
        REDIS_URL="redis://cache.bank.example:6379/0",
        SAFECHAT_WS_ALLOWED_ORIGINS="https://chat.bank.example",
    )


def private_file(tmp_path: Path, name: str, content: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(content)
    path.chmod(mode)
    return str(path)


def key_file_env(tmp_path: Path, mode: int) -> dict[str, str]:
    seed = base64.b64encode(os.urandom(32)).decode()
    return {
        "SAFECHAT_AUDIT_SIGNING_KEY_FILE": private_file(tmp_path, "audit.key", seed, mode),
    }


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
        # Key material is read at start, not trusted by its presence (issue 12, case 9).
        (
            lambda env: {**env, "SAFECHAT_MASTER_KEYS": "1:abc"},
            "master key: master key version 1 is not valid base64",
        ),
        (
            lambda env: {**env, "SAFECHAT_AUDIT_SIGNING_KEY": "bogus"},
            "SAFECHAT_AUDIT_SIGNING_KEY is not base64 of a 32-byte Ed25519 seed",
        ),
        (
            lambda env: {
                **without(env, "SAFECHAT_MASTER_KEYS"),
                "SAFECHAT_MASTER_KEY_FILE": "/nonexistent/master-keys.json",
            },
            "master key: cannot open master key file /nonexistent/master-keys.json",
        ),
        (
            lambda env: {
                **without(env, "SAFECHAT_MASTER_KEYS"),
                "SAFECHAT_KEY_PROVIDER": "pkcs11",
                "SAFECHAT_PKCS11_LIBRARY": "/nonexistent/libsofthsm2.so",
                "SAFECHAT_PKCS11_TOKEN_LABEL": "safechat",
                "SAFECHAT_PKCS11_PIN": "1234",
            },
            "SAFECHAT_PKCS11_LIBRARY /nonexistent/libsofthsm2.so does not exist",
        ),
        (
            lambda env: {
                **without(env, "SAFECHAT_MASTER_KEYS"),
                "SAFECHAT_KEY_PROVIDER": "PKCS11",
                "SAFECHAT_PKCS11_LIBRARY": "/nonexistent/libsofthsm2.so",
                "SAFECHAT_PKCS11_TOKEN_LABEL": "safechat",
                "SAFECHAT_PKCS11_PIN": "1234",
            },
            "SAFECHAT_PKCS11_LIBRARY /nonexistent/libsofthsm2.so does not exist",
        ),
        (lambda env: without(env, "DATABASE_URL"), "DATABASE_URL is not set"),
        # The engine the URL resolves to counts, not how its scheme is spelled.
        (
            lambda env: {**env, "DATABASE_URL": "SQLITE:////tmp/safechat.sqlite3"},
            "DATABASE_URL names django.db.backends.sqlite3",
        ),
        (
            lambda env: {**env, "DATABASE_URL": "mysql://safechat@db.bank.example/safechat"},
            "DATABASE_URL names django.db.backends.mysql",
        ),
        (
            lambda env: {**env, "DATABASE_URL": "not a url"},
            "DATABASE_URL names no known database",
        ),
        (lambda env: without(env, "REDIS_URL"), "REDIS_URL is not set"),
        (
            lambda env: {**env, "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"},
            "delivers no mail",
        ),
        (
            lambda env: {**env, "SAFECHAT_WS_ALLOWED_ORIGINS": "*"},
            "SAFECHAT_WS_ALLOWED_ORIGINS contains a wildcard",
        ),
        (
            lambda env: {**env, "SAFECHAT_METRICS_TOKEN": "x" * 31},
            "SAFECHAT_METRICS_TOKEN is shorter than 32 characters",
        ),
    ],
)
def test_production_refuses_each_insecure_setting_with_its_own_one_line_reason(
    tmp_path: Path, change: object, reason: str
) -> None:
    # given a production environment with exactly one insecure setting
    env = change(good_production_env(tmp_path))  # type: ignore[operator]

    # when Django starts (and runs the deployment checklist)
    result = run_django(env, "check", "--deploy")

    # then it refuses, on one line naming the reason, without a traceback
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("SafeChat refuses to start in production: ")
    assert reason in lines[0]
    assert "Traceback" not in result.stderr


def test_an_audit_key_file_readable_by_others_is_refused_in_production(tmp_path: Path) -> None:
    env = {**without(good_production_env(tmp_path), "SAFECHAT_AUDIT_SIGNING_KEY")}
    env.update(key_file_env(tmp_path, 0o644))

    result = run_django(env, "check", "--deploy")

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "audit signing key" in lines[0]
    assert "has mode 0644" in lines[0]


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    env = {**good_production_env(tmp_path), "SAFECHAT_MASTER_KEYS": "1:abc", "DEBUG": "1"}
    env = without(env, "REDIS_URL")

    result = run_django(env, "check", "--deploy")

    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith("SafeChat refuses to start in production: ") for line in lines)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (str(2**25), "SAFECHAT_EPOCH_MAX_MESSAGES must be between 1 and 16777216"),
        ("abc", "SAFECHAT_EPOCH_MAX_MESSAGES must be a whole number, not 'abc'"),
    ],
    ids=["above the AEAD limit", "not a number"],
)
def test_an_epoch_bound_that_cannot_work_refuses_to_start_on_one_line(
    tmp_path: Path, value: str, reason: str
) -> None:
    for env in (project_env(tmp_path), good_production_env(tmp_path)):
        result = run_django({**env, "SAFECHAT_EPOCH_MAX_MESSAGES": value}, "check")

        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert reason in lines[0]
        assert "Traceback" not in result.stderr


def test_the_key_provider_is_read_the_same_way_everywhere() -> None:
    assert provider_kind({"SAFECHAT_KEY_PROVIDER": " PKCS11 "}) == "pkcs11"
    assert provider_kind({"SAFECHAT_KEY_PROVIDER": ""}) == "local"
    assert provider_kind({}) == "local"
    assert environment.master_key_configured(
        {
            "SAFECHAT_KEY_PROVIDER": "PKCS11",
            "SAFECHAT_PKCS11_LIBRARY": "/usr/lib/softhsm/libsofthsm2.so",
            "SAFECHAT_PKCS11_TOKEN_LABEL": "safechat",
            "SAFECHAT_PKCS11_PIN": "1234",
        }
    )


def test_production_with_a_key_file_of_mode_0600_passes(tmp_path: Path) -> None:
    env = {**without(good_production_env(tmp_path), "SAFECHAT_AUDIT_SIGNING_KEY")}
    env.update(key_file_env(tmp_path, 0o600))

    result = run_django(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr


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


@pytest.mark.parametrize("token", ["", secrets.token_urlsafe(24)], ids=["unset", "32 characters"])
def test_production_starts_with_no_metrics_token_or_one_of_32_characters(
    tmp_path: Path, token: str
) -> None:
    # given a good production environment, without a metrics token or with one of 32
    env = {**good_production_env(tmp_path), "SAFECHAT_METRICS_TOKEN": token}
    assert len(token) in (0, 32)

    # when Django starts
    result = run_django(env, "check", "--deploy")

    # then nothing about the metrics token stops it
    assert "SAFECHAT_METRICS_TOKEN" not in result.stderr
