"""axe-core in the browser tests: inject the vendored engine into a page and fail on any
WCAG 2.0 / 2.1 level A or AA violation.

The portal's CSP (``script-src 'self'``) forbids an injected script, which is the point
of the CSP; the browser context that runs axe is made with Playwright's
``bypass_csp=True`` (:data:`AXE_CONTEXT`), the standard way to inject a test tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_DIR = Path(__file__).resolve().parent / "vendor" / "axe-core"
AXE_JS = AXE_DIR / "axe.min.js"
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_CONTEXT: dict[str, Any] = {"bypass_csp": True}

_RUN = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
  }));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The WCAG 2.0/2.1 A and AA violations axe-core finds on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    violations: list[dict[str, Any]] = page.evaluate(_RUN, WCAG_A_AA)
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines.extend(f"    {n['target']}: {n['summary']}" for n in v["nodes"][:5])
    return "\n".join(lines)


def assert_accessible(page: Page, where: str) -> None:
    """Fail, naming every rule and element, if axe-core finds an A or AA violation."""
    violations = axe_violations(page)
    assert violations == [], f"{where} ({page.url}):\n{describe(violations)}"
