"""Vendored third-party files are exactly the published ones their manifest names."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from tests.support.axe import AXE_DIR


def test_vendored_axe_core_matches_its_manifest() -> None:
    # given the manifest written when axe-core was taken from its npm package
    manifest = json.loads((AXE_DIR / "manifest.json").read_text())
    assert manifest["package"] == "axe-core"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])  # pinned, no range
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", manifest["integrity"])

    # when each vendored file is hashed
    for name, entry in manifest["files"].items():
        content = (AXE_DIR / name).read_bytes()
        digest = base64.b64encode(hashlib.sha512(content).digest()).decode()

        # then it is the file the manifest names, byte for byte
        assert entry["sha512"] == f"sha512-{digest}", name
        if "sri" in entry:
            sri = base64.b64encode(hashlib.sha256(content).digest()).decode()
            assert entry["sri"] == f"sha256-{sri}", name

    # and the engine is the version the manifest names
    head = (AXE_DIR / "axe.min.js").read_text()[:200]
    assert f"axe v{manifest['version']}" in head
    # and nothing is vendored that the manifest does not name
    names = {p.name for p in AXE_DIR.iterdir()} - {"manifest.json", "README.md"}
    assert names == set(manifest["files"])


def test_vendored_tus_js_client_matches_its_manifest() -> None:
    # given the manifest written when tus-js-client was taken from its npm package
    from django.conf import settings

    base = settings.BASE_DIR / "static" / "vendor" / "tus-js-client"
    (folder,) = list(base.iterdir())  # one pinned version, named by its folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package"] == "tus-js-client"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])  # pinned, no range
    assert folder.name == manifest["version"]
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", manifest["integrity"])

    # when each vendored file is hashed
    for name, entry in manifest["files"].items():
        content = (folder / name).read_bytes()
        digest = base64.b64encode(hashlib.sha512(content).digest()).decode()

        # then it is the file the manifest names, byte for byte
        assert entry["sha512"] == f"sha512-{digest}", name
        assert entry["sha256"] == hashlib.sha256(content).hexdigest(), name

    # and the browser bundle is the one the portal loads
    assert "tus.min.js" in manifest["files"]
    # and nothing is vendored that the manifest does not name
    names = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert names == set(manifest["files"])


def test_vendored_chart_js_matches_its_manifest() -> None:
    # given the manifest written when Chart.js was taken from its npm package
    from django.conf import settings

    base = settings.BASE_DIR / "static" / "vendor" / "chart.js"
    (folder,) = list(base.iterdir())  # one pinned version, named by its folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package"] == "chart.js"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])  # pinned, no range
    assert folder.name == manifest["version"]
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", manifest["integrity"])

    # when each vendored file is hashed
    for name, entry in manifest["files"].items():
        content = (folder / name).read_bytes()
        digest = base64.b64encode(hashlib.sha512(content).digest()).decode()

        # then it is the file the manifest names, byte for byte
        assert entry["sha512"] == f"sha512-{digest}", name
        assert entry["sha256"] == hashlib.sha256(content).hexdigest(), name

    # and the bundle is the version the manifest names, the one the dashboard loads
    head = (folder / "chart.umd.min.js").read_text()[:200]
    assert f"Chart.js v{manifest['version']}" in head
    # and nothing is vendored that the manifest does not name
    names = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert names == set(manifest["files"])
