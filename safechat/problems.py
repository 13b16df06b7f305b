"""Problem details (RFC 9457): the one shape of every API error.

An error body is ``application/problem+json``::

    {"type": "urn:safechat:problem:invalid", "title": "Invalid input.", "status": 400,
     "detail": "...", "instance": "/api/v1/rooms/create/", "code": "invalid",
     "request_id": "9f1c...", "errors": [{"pointer": "#/name", "code": "required",
     "detail": "This field is required."}]}

``code`` is stable and machine-readable (``type`` is the same code as a URN, so it never
depends on where the server runs); ``title`` is fixed per code, ``detail`` speaks of this
occurrence; ``instance`` is the request's path; ``request_id`` is the ``X-Request-ID``
the response carries (quote it to support); ``errors`` (validation only) lists each field
error with a JSON pointer (RFC 6901, as a URI fragment: ``#`` is the whole body) into
the request body, or the query, that was refused.

Every edge builds its errors here: the DRF exception handler (``safechat.api``), the
Django error handlers for routes under ``/api/`` and the middleware that refuse before a
view runs (authentication, oversized bodies). A lower module: it imports Django only, so
any layer's edge may use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse

from safechat.request_context import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:safechat:problem:"
API_PREFIX = "/api/"

# Each code's fixed title; a code not listed takes its status's reason phrase.
TITLES: dict[str, str] = {
    "invalid": "Invalid input.",
    "parse_error": "Malformed request body.",
    "malformed_utf8": "Request not UTF-8.",
    "nesting_too_deep": "Request body nested too deeply.",
    "duplicate_key": "Request body names a member twice.",
    "too_many_fields": "Too many fields.",
    "too_many_files": "Too many files.",
    "bad_request": "Bad request.",
    "not_authenticated": "Authentication required.",
    "authentication_failed": "Invalid credentials.",
    "second_factor_required": "Second factor required.",
    "permission_denied": "Not allowed.",
    "not_found": "Not found.",
    "method_not_allowed": "Method not allowed.",
    "not_acceptable": "Not acceptable.",
    "length_required": "Length required.",
    "payload_too_large": "Request body too large.",
    "unsupported_media_type": "Unsupported media type.",
    "unsupported_content_encoding": "Unsupported content coding.",
    "idempotency_key_reused": "Idempotency key reused.",
    "already_member": "Already a member.",
    "throttled": "Too many requests.",
    "integrity_failure": "Stored data failed its integrity check.",
    "server_error": "Internal error.",
    # The file vault's tus endpoint and downloads (docs/files.md).
    "tus_version": "Tus-Resumable missing or unsupported.",
    "bad_header": "Malformed header.",
    "content_type": "Wrong upload content type.",
    "not_streamed": "Uploads go to the upload endpoint.",
    "body_not_allowed": "No body allowed here.",
    "too_large": "File too large.",
    "room_quota_exceeded": "Room file quota exceeded.",
    "file_type_refused": "File type not accepted.",
    "offset_conflict": "Upload offset conflict.",
    "gone": "Upload gone.",
    "range_not_satisfiable": "Range not satisfiable.",
}


def is_api_path(path: str) -> bool:
    """Whether ``path`` is served by the API (and so answers errors as problem details)."""
    return path.startswith(API_PREFIX)


def problem(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str = "",
    errors: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The problem document (a JSON object) for one error."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": TITLES.get(code) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": current_request_id.get(),
    }
    if errors:
        body["errors"] = [dict(error) for error in errors]
    return body


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    request: HttpRequest | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """A Django response carrying :func:`problem`, never cached (``no-store``)."""
    body = problem(
        status=status,
        code=code,
        detail=detail,
        instance=request.path if request is not None else "",
        errors=errors,
    )
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "TITLES",
    "TYPE_PREFIX",
    "is_api_path",
    "problem",
    "problem_response",
]
