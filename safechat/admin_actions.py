"""One way for a Django admin action to call a service on each selected row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest

Row = TypeVar("Row", bound=Model)


def each_row(
    admin_view: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Row],
    *,
    call: Callable[[Row], object],
    label: Callable[[Row], str],
    done: str,
    refusals: tuple[type[Exception], ...] = (PermissionDenied,),
    stops: tuple[type[Exception], ...] = (),
) -> int:
    """Call ``call`` on each row of ``queryset`` in ascending id order, each in the service's
    own transaction; returns how many went through.

    A refusal (one of ``refusals``, audited by the service) is told on the page as
    ``"<label>: <reason>"`` and the other rows go on; one of ``stops`` (a rate limit) is
    told and ends the action. The page then says ``"<count> <done>"``.
    """
    count = 0
    for row in queryset.order_by("pk"):
        try:
            call(row)
            count += 1
        except stops as exc:
            admin_view.message_user(request, f"{label(row)}: {exc}", messages.ERROR)
            break
        except refusals as exc:
            admin_view.message_user(request, f"{label(row)}: {exc}", messages.ERROR)
    admin_view.message_user(request, f"{count} {done}")
    return count
