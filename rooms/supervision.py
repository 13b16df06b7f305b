"""Supervision of a written message, answered by the compliance app.

Supervision review (lexicons, sampling, the review queue) is the compliance app's
(``compliance.services.supervision``), which sits above ``rooms`` in the layers
(docs/architecture.md, "Layers"): rooms never imports it. Yet the issue's rule is that a
message is matched as it is written, on the plaintext held in memory by the post, in the
post's transaction. So the compliance app registers, once, in its ``AppConfig.ready``,
the function that inspects a written text (``posted_inspector_register``), and the
message services call it (``posted_inspect``) after encrypting and before their audit
append.

An explicit registry, not a signal: a post nobody registered an inspector for is an
error (``ImproperlyConfigured``), never a message silently left unsupervised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from rooms.models import Message

# Inspect ``text``, the plaintext of ``message``'s current revision, inside the write's
# transaction; stores nothing but what the inspector's own rules say (never the text).
PostedInspector = Callable[["Message", str], object]

_registered: list[PostedInspector] = []


def posted_inspector_register(inspector: PostedInspector) -> None:
    """Register the compliance app's inspector (a second registration replaces the first)."""
    _registered[:] = [inspector]


def posted_inspect(*, message: Message, text: str) -> None:
    """Have the registered inspector match ``text`` (``message``'s new revision, in memory)
    in the caller's transaction. Raises ``ImproperlyConfigured`` if none was registered,
    and whatever the inspector raises (the write then rolls back: nothing half-supervised
    is stored)."""
    if not _registered:
        raise ImproperlyConfigured(
            "the compliance app registers its supervision inspector in "
            "ComplianceConfig.ready; is it installed?"
        )
    _registered[0](message, text)
