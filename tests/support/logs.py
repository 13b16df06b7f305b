"""What the project's configured log handler writes, captured (a pytest plugin)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

# Root and the loggers given a level of their own, at DEBUG while a test captures: a line
# below the configured level must not hide a leak either.
CAPTURED_LOGGERS = ("", "django", "axes", "uvicorn", "celery")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the project's configured log handler writes (root's, and the server's
    loggers', which share it), as the lines it would write to stderr."""
    output = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    configured = [
        h for h in handlers if any(type(f).__name__ == "OneTimeSecretFilter" for f in h.filters)
    ]
    assert configured, "the project's stderr handler redacts one-time secrets"
    previous = [handler.setStream(output) for handler in configured]
    levels = {name: logging.getLogger(name).level for name in CAPTURED_LOGGERS}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield output
    finally:
        for handler, stream in zip(configured, previous, strict=True):
            if stream is not None:
                handler.setStream(stream)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
