"""The import-layering contract (pyproject.toml, ``[tool.importlinter]``) holds, and bites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("safechat", "accounts", "rooms", "files", "compliance", "audit")
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


def test_a_selector_importing_the_socket_breaks_the_contract(project_copy: Path) -> None:
    # given a selector importing the socket's frame protocol (an edge, and no circle)
    append_import(project_copy / "rooms" / "selectors.py", "import rooms.socket.protocol")

    result = lint_imports(project_copy)
    assert result.returncode != 0
    assert "rooms.selectors is not allowed to import rooms.socket" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        ("events.py", "import rooms.models", "safechat.events is not allowed to import rooms"),
        (
            "actions.py",
            "import accounts.models",
            "safechat.actions is not allowed to import accounts",
        ),
    ],
)
def test_the_spine_importing_an_app_breaks_the_contract(
    project_copy: Path, module: str, statement: str, broken: str
) -> None:
    append_import(project_copy / "safechat" / module, statement)

    result = lint_imports(project_copy)
    assert result.returncode != 0
    assert broken in result.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The module groups that import each other round in a circle (Tarjan's algorithm)."""
    modules = sorted(graph.modules)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in modules:
        if module not in order:
            visit(module)
    return cycles


def test_no_module_imports_itself_round_a_circle() -> None:
    # function-level imports count too: a circle hidden inside a function is still one
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a package whose services queue a task that calls the services (the shape the
    # audit app had), the circle closed by an import inside a function
    package = tmp_path / "circle_example"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "chain.py").write_text("")
    (package / "services.py").write_text(
        "from circle_example import chain\n\n\ndef record():\n"
        "    from circle_example.tasks import checkpoint\n"
    )
    (package / "tasks.py").write_text("from circle_example.services import record\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    # when its graph is searched, then the circle is found, and only it
    graph = grimp.build_graph("circle_example", cache_dir=None)
    assert import_cycles(graph) == [["circle_example.services", "circle_example.tasks"]]
