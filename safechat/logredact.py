"""No log line carries a one-time secret from a URL.

The bootstrap link, invitation links and password-reset links carry their secret in the
path. Web server access logs, Django's request warnings and django-axes' client string all
log paths; the filter here replaces those segments with ``[redacted]`` before any handler
formats the record. Imports nothing of the project.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
_SEGMENT = r"[^/?#\s\"']+"
_ONE_TIME_PATHS = re.compile(
    rf"(/accounts/(?:bootstrap|invitation)/){_SEGMENT}"
    rf"|(/accounts/password-reset/){_SEGMENT}/{_SEGMENT}"
)

# Loggers that write paths through handlers of their own (the server's access log, the
# development server), so the filter on the project's handler does not see them.
PATH_LOGGERS = ("uvicorn.access", "uvicorn.error", "django.server")


def _replace(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return match.group(1) + REDACTED
    return f"{match.group(2)}{REDACTED}/{REDACTED}"


def redact(text: str) -> str:
    """``text`` with the secret segments of one-time URLs replaced."""
    if "/accounts/" not in text:
        return text
    return _ONE_TIME_PATHS.sub(_replace, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class OneTimeSecretFilter(logging.Filter):
    """Redacts one-time URL secrets in a record's message and arguments, keeping the
    arguments' shape (uvicorn's access formatter unpacks them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_value(arg) for key, arg in record.args.items()}
        return True


def path_loggers_redact() -> None:
    """Add the filter to the loggers that bypass the project's handler (idempotent)."""
    for name in PATH_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneTimeSecretFilter) for f in logger.filters):
            logger.addFilter(OneTimeSecretFilter())


def axes_client_str(
    username: str, ip_address: str, user_agent: str, path_info: Any, request: Any
) -> str:
    """django-axes' client string for its log lines, with the path redacted."""
    if isinstance(path_info, tuple | list):
        path_info = path_info[0] if path_info else ""
    return (
        f'{{username: "{username}", ip_address: "{ip_address}", '
        f'path_info: "{redact(str(path_info or ""))}"}}'
    )
