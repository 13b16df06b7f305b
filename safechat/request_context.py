"""What identifies the request being served, for every layer that logs or audits it.

Set by ``safechat.middleware.RequestIdMiddleware``; read by log filters and by
``audit_record``. Imports nothing of the project, so any layer may read it.
"""

from __future__ import annotations

from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="-")
