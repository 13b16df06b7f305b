"""The import-layering contract (pyproject.toml, ``[tool.importlinter]``) holds, and bites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("safechat", "accounts", "rooms", "files", "audit")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the project's contracts over the packages found under ``root``."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(PROJECT_ROOT / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's packages, copied where a test may break them."""
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return tmp_path


def append_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # a deliberate violation\n")


def test_the_project_keeps_every_contract() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(project_copy: Path) -> None:
    # given the keyring importing the rooms app it sits below
    append_import(project_copy / "safechat" / "keyring" / "errors.py", "import rooms.models")

    # when the contracts run, then the layers contract is broken and names the import
    result = lint_imports(project_copy)
    assert result.returncode != 0
    assert "safechat.keyring is not allowed to import rooms" in result.stdout
    assert "safechat.keyring.errors -> rooms.models" in result.stdout


def test_the_crypto_core_importing_django_breaks_the_contract(project_copy: Path) -> None:
    append_import(project_copy / "safechat" / "crypto" / "mac.py", "import django.conf")

    result = lint_imports(project_copy)
    assert result.returncode != 0
    assert "safechat.crypto is not allowed to import django" in result.stdout
