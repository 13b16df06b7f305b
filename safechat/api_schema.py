"""The OpenAPI schema's generator: drf-spectacular's, with HEAD where a view defines it.

A module of its own: ``safechat.api`` is imported while DRF's settings load, before
drf-spectacular's generator may be.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator


class _EndpointEnumerator(EndpointEnumerator):
    """drf-spectacular's enumerator, but a ``head`` a view defines itself (the tus
    offset query, ``HEAD /api/v1/uploads/{id}``) is an operation of its own; Django's
    HEAD-as-GET is not (it is GET's)."""

    def get_allowed_methods(self, callback: Any) -> list[str]:
        methods: list[str] = super().get_allowed_methods(callback)  # type: ignore[no-untyped-call]
        view = getattr(callback, "cls", None)
        if view is not None and any("head" in vars(klass) for klass in view.__mro__):
            methods.append("HEAD")
        return methods


class ApiSchemaGenerator(SchemaGenerator):
    """The schema generator (``SPECTACULAR_SETTINGS["DEFAULT_GENERATOR_CLASS"]``): every
    operation a view defines, HEAD included where it is one of its own."""

    endpoint_inspector_cls = _EndpointEnumerator
