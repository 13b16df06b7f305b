"""The base of every project management command: it runs under the ``command`` channel."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from safechat.request_context import CHANNEL_COMMAND, ActingContext, acting, new_request_id


class SafeChatCommand(BaseCommand):
    """A management command whose audit events say they came from a command, each run
    under a request id of its own (printed in its log lines)."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        with acting(ActingContext(channel=CHANNEL_COMMAND, request_id=new_request_id())):
            result: str | None = super().execute(*args, **options)
        return result
