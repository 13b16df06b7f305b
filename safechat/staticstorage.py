"""Production storage for static files: hashed names, compressed copies, and the chat's
ES modules rewritten to import each other by their hashed names.

Django's manifest storage rewrites ``url()`` in CSS but, by default, not the
specifiers of JavaScript ``import`` statements: ``main.<hash>.js`` would still import
``./dom.js``, an unhashed name that whitenoise serves without far-future caching, and a
stale copy of which a browser could mix with a newer ``main``. Django 4.2+ rewrites them
when ``support_js_module_import_aggregation`` is set; an import must then end with ``;``
(every module in ``static/safechat/chat/`` does, and
tests/safechat/test_static_files.py checks the result).
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


# whitenoise ships no type information: its class is Any to mypy.
class ModuleAwareStaticFilesStorage(CompressedManifestStaticFilesStorage):  # type: ignore[misc]
    """Whitenoise's compressed manifest storage, with ES module imports rewritten."""

    support_js_module_import_aggregation = True
