"""The audit export endpoint for compliance officers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from audit.permissions import CanViewAuditLog
from audit.services import audit_export_start
from audit.services.export import EXPORT_FORMATS
from safechat.pagination import query_names_check, query_value
from safechat.streaming import streamed_body

BLANK_PARAMETER = "Give a value, or leave the parameter out."


class _IgnoreFormatParameter(DefaultContentNegotiation):
    """``?format=`` chooses the export format here, not DRF's renderer.

    Errors are always rendered as JSON.
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class AuditExportApi(APIView):
    """``GET /api/v1/audit/export?since=&until=&format=jsonl|csv``: a streamed export.

    Needs the project's API rules (authenticated, second factor verified) plus
    ``audit.view_auditevent``. ``since`` is inclusive, ``until`` exclusive, both
    ISO-8601 (UTC when no zone is given). Every export is recorded
    (``audit.exported``); a signed-in request refused for want of the permission or the
    token scope is recorded as ``access.refused`` (by the request middleware), and
    nothing else is written.
    """

    content_negotiation_class = _IgnoreFormatParameter
    # GET only (and OPTIONS): Django would answer HEAD by running ``get``, which builds the
    # export and records ``audit.exported`` for a response with no body. The contract
    # (docs/api.md) offers the export to GET alone, so HEAD is a 405 naming GET in
    # ``Allow``, answered after authentication and before any work or record.
    http_method_names = ("get", "options")
    # An API token needs the read-only audit scope (or admin, which covers it): the whole
    # audit trail leaves the system. The scope is named as the API's token check reads it
    # (accounts.scopes.AUDIT): the audit app sits below accounts and imports none of it.
    required_token_scope = "audit"  # noqa: S105 (a scope name, not a secret)

    class InputSerializer(serializers.Serializer[Any]):
        since = serializers.DateTimeField(required=False, default=None)
        until = serializers.DateTimeField(required=False, default=None)
        format = serializers.ChoiceField(choices=EXPORT_FORMATS, default="jsonl")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            since, until = attrs.get("since"), attrs.get("until")
            if since is not None and until is not None and since >= until:
                raise serializers.ValidationError({"until": "must be after since"})
            return attrs

    def get_permissions(self) -> Sequence[Any]:
        # The project's rules (authenticated, second factor, token scope), plus ours.
        return [*super().get_permissions(), CanViewAuditLog()]

    @extend_schema(
        operation_id="audit_export",
        parameters=[InputSerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="Malformed since, until or format."),
            403: OpenApiResponse(description="Not a verified holder of audit.view_auditevent."),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        # A parameter it does not take (``?formt=csv``) is refused, never ignored.
        query_names_check(request.query_params, ("since", "until", "format"))
        # An empty value (``?until=``) is a mistake, not an absent parameter (as on every
        # list): refused, never read as "no bound"; so is one sent twice (which counts?).
        blank = [
            name
            for name in ("since", "until", "format")
            if query_value(request.query_params, name) == ""
        ]
        if blank:
            raise ValidationError(
                {name: [ErrorDetail(BLANK_PARAMETER, code="blank")] for name in blank}
            )
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        export = audit_export_start(
            actor=request.user,
            since=params.validated_data["since"],
            until=params.validated_data["until"],
            format=params.validated_data["format"],
            via="api",
            request=request._request,
        )
        response = StreamingHttpResponse(
            streamed_body(request._request, export.chunks), content_type=export.content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["Cache-Control"] = "no-store"
        return response
