"""Production static files: collectstatic with the manifest storage gives the chat's ES
modules hashed names and rewrites their imports to those names, and the page's module
graph loads from the hashed files alone."""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Response, sync_playwright

from tests.safechat.test_production_settings import good_production_env, run_django
from tests.support.browser import launch

IMPORT = re.compile(r"""\bimport\b[^;]*?\bfrom\s*["']([^"']+)["']\s*;""", re.DOTALL)
CHAT_MODULES = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "static/safechat/chat").glob("*.js")
)


def collect(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "static"
    env = {**good_production_env(tmp_path), "SAFECHAT_STATIC_ROOT": str(root)}
    result = run_django(env, "collectstatic", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    return root, manifest


@contextmanager
def serving(root: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_collectstatic_rewrites_module_imports_to_hashed_names(tmp_path: Path) -> None:
    # given the production storage
    root, manifest = collect(tmp_path)

    # when every chat module's hashed copy is read
    hashed = {manifest[f"safechat/chat/{name}"] for name in CHAT_MODULES}
    imports: set[str] = set()
    for name in hashed:
        source = (root / name).read_text()
        for spec in IMPORT.findall(source):
            imports.add(str(Path(name).parent / spec.removeprefix("./")))

    # then each imports only hashed names, and each of those exists
    assert imports, "no import found in the chat modules"
    assert imports <= hashed, sorted(imports - hashed)
    assert all((root / name).is_file() for name in imports)
    # and every module but the entry is imported by some other
    assert hashed - imports == {manifest["safechat/chat/main.js"]}


def test_the_module_graph_loads_from_hashed_names_in_the_browser(tmp_path: Path) -> None:
    # given the collected files, served as they are, with nothing unhashed beside them
    root, manifest = collect(tmp_path)
    for name in CHAT_MODULES:
        (root / "safechat/chat" / name).unlink()
    entry = manifest["safechat/chat/main.js"]
    (root / "page.html").write_text(
        f'<!doctype html><script type="module" src="/{entry}"></script>'
    )
    loaded: list[Response] = []

    # when a browser loads the entry module
    with serving(root) as base_url, sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            page = browser.new_page()
            page.on("response", lambda r: loaded.append(r) if r.url.endswith(".js") else None)
            page.goto(f"{base_url}/page.html")
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()

    # then every module came from its hashed name, none failed
    assert sorted(r.status for r in loaded) == [200] * len(CHAT_MODULES)
    names = {r.url.removeprefix(f"{base_url}/") for r in loaded}
    assert names == {manifest[f"safechat/chat/{name}"] for name in CHAT_MODULES}
