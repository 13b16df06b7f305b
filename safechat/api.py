"""API-wide behaviour: every error is a problem document (RFC 9457), never a stack trace.

One error path: whatever a view, a serializer, a parser, an authentication class or a
service raises reaches :func:`exception_handler`, which answers it through
``safechat.problems.problem_response``; so do the Django error handlers for routes
under ``/api/`` that no view serves (:func:`api_error_handler`), and the middleware that
refuse before a view runs. The codes are listed in docs/api.md ("Errors").

Also here: the JSON parser (bounded, and a client error for every malformed body), the
request budget of every signed-in request (:class:`ApiRequestThrottle`), the metadata of
an ``OPTIONS`` answer (no view docstrings), and the schema's extensions and hook: every
request body closed to other members, every operation's problem responses and
``RateLimit`` headers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
    ValidationError,
)
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import is_valid_path
from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from rest_framework import exceptions, parsers, permissions, status, throttling
from rest_framework.exceptions import ErrorDetail
from rest_framework.metadata import SimpleMetadata
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.utils import json

from safechat.fields import IDEMPOTENCY_KEY, HeaderRefused
from safechat.json_input import DuplicateName, lone_surrogate, object_of_unique_names
from safechat.problems import is_api_path, problem_response
from safechat.ratelimit import Rate, rate_hit

if TYPE_CHECKING:
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

NON_FIELD_POINTER = "#"
# Requests whose input is their query string: field errors name a ``parameter``.
QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def _pointer(path: tuple[str, ...]) -> str:
    """A JSON pointer (RFC 6901) as a URI fragment; ``non_field_errors`` is the body."""
    parts = [p for p in path if p != "non_field_errors"]
    if not parts:
        return NON_FIELD_POINTER
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return NON_FIELD_POINTER + "/" + "/".join(escaped)


def _field_errors(detail: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """Each leaf of a DRF validation ``detail`` (dicts of lists of ``ErrorDetail``)."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            yield from _field_errors(value, (*path, str(key)))
    elif isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            for item in detail:
                yield from _field_errors(item, path)
        else:  # a list field: errors by index, an empty entry for a valid item
            for index, item in enumerate(detail):
                if item:
                    yield from _field_errors(item, (*path, str(index)))
    else:
        code = getattr(detail, "code", None) or "invalid"
        yield {"pointer": _pointer(path), "code": str(code), "detail": str(detail)}


def _django_validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A service's ``ValidationError`` as field errors (its fields, or the whole body)."""
    if hasattr(exc, "error_dict"):
        return [
            {"pointer": _pointer((field,)), "code": error.code or "invalid", "detail": message}
            for field, errors in exc.error_dict.items()
            for error in errors
            for message in error.messages
        ]
    return [
        {"pointer": NON_FIELD_POINTER, "code": error.code or "invalid", "detail": message}
        for error in exc.error_list
        for message in error.messages
    ]


def _input_is_query(request: HttpRequest) -> bool:
    """Whether the request's input is its query string: a method that takes no body, sent
    without one (a DELETE with a JSON body has its members refused by pointer)."""
    length = str(request.META.get("CONTENT_LENGTH") or "0")
    return request.method in QUERY_METHODS and (not length.isdigit() or int(length) == 0)


def _as_parameter(error: dict[str, str]) -> dict[str, str]:
    """A field error of a request without a body names the query ``parameter`` refused."""
    pointer = error.pop("pointer")
    if pointer != NON_FIELD_POINTER:
        error = {"parameter": pointer.removeprefix("#/").split("/")[0], **error}
    return error


def _validation_summary(errors: list[dict[str, str]]) -> str:
    """The ``detail`` of a validation problem: its one error, or how many there are."""
    if len(errors) != 1:
        return f"{len(errors)} problems with the request; see errors."
    only = errors[0]
    where = only.get("parameter") or only.get("pointer", NON_FIELD_POINTER).removeprefix("#/")
    return only["detail"] if where == NON_FIELD_POINTER else f"{where}: {only['detail']}"


def _code_of(exc: exceptions.APIException) -> str:
    code = getattr(exc.detail, "code", None)
    return str(code) if isinstance(code, str) and code else str(exc.default_code)


def throttled_detail(wait: int | None) -> str:
    if wait is None:
        return "Too many requests; try again later."
    return f"Too many requests; try again in {wait} s."


# Django's own refusals of a request body (its data limits): the status, the code, and
# the detail naming the limit (read when answered, so a test's settings count).
_BODY_LIMITS: tuple[tuple[type[Exception], int, str, Callable[[], str]], ...] = (
    (
        RequestDataTooBig,
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        "payload_too_large",
        lambda: (
            f"The request body is over the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        ),
    ),
    (
        TooManyFieldsSent,
        400,
        "too_many_fields",
        lambda: f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields were sent.",
    ),
    (
        TooManyFilesSent,
        400,
        "too_many_files",
        lambda: f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files were sent.",
    ),
)


def problem_for(exc: BaseException, request: HttpRequest | None) -> HttpResponse | None:
    """The problem response for ``exc``, or None for an error no client caused (a 500).

    The one mapping from exceptions to statuses and codes, for the API's views and for
    the Django handlers that answer under ``/api/`` before or without a view.
    """
    from rooms.errors import (
        AlreadyMemberError,
        ClientKeyRefusedError,
        IdempotencyKeyReusedError,
        NotAMemberError,
        RateLimitedError,
        RoomHiddenError,
        UnreachableError,
    )
    from safechat.keyring.errors import IntegrityFailure

    if isinstance(exc, IntegrityFailure):
        # Stored data failed its check: not the client's fault, and not to be retried
        # blindly; the keyring reported it (logged, audited once), the client is told.
        return problem_response(
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            code="integrity_failure",
            detail="Stored data failed its integrity check; the security team is "
            "notified. Nothing was changed.",
            request=request,
        )
    if isinstance(exc, ClientKeyRefusedError):
        # The API's only client key is the Idempotency-Key header: each refusal names it,
        # with its own code. A key reused for another text or parent is well-formed but
        # conflicts with what the key stands for (422).
        reused = isinstance(exc, IdempotencyKeyReusedError)
        return problem_response(
            status=status.HTTP_422_UNPROCESSABLE_ENTITY if reused else status.HTTP_400_BAD_REQUEST,
            code="idempotency_key_reused" if reused else "invalid",
            detail=f"{IDEMPOTENCY_KEY}: {exc.messages[0]}",
            errors=[
                {"parameter": IDEMPOTENCY_KEY, "code": str(exc.code), "detail": exc.messages[0]}
            ],
            request=request,
        )
    if isinstance(exc, RateLimitedError):
        exc = exceptions.Throttled(wait=exc.retry_after)
    if isinstance(exc, AlreadyMemberError):
        # Adding a member again under another role: the role changes on their resource.
        return problem_response(
            status=status.HTTP_409_CONFLICT,
            code="already_member",
            detail=exc.messages[0],
            request=request,
        )
    if isinstance(exc, NotAMemberError):
        # The membership the path names does not exist: answered as any such path is.
        exc = Http404(exc.messages[0])
    if isinstance(exc, UnreachableError):
        # Recorded as the refusal it is; answered exactly as an id that names nobody is.
        exc = ValidationError(exc.message)
    if isinstance(exc, ValidationError):
        errors = _django_validation_errors(exc)
        return problem_response(
            status=400,
            code="invalid",
            detail=_validation_summary(errors),
            errors=errors,
            request=request,
        )
    for kind, status_code, code, detail in _BODY_LIMITS:
        if isinstance(exc, kind):
            return problem_response(status=status_code, code=code, detail=detail(), request=request)
    if isinstance(exc, SuspiciousOperation):
        return problem_response(
            status=400, code="bad_request", detail="The request was refused.", request=request
        )
    if isinstance(exc, Http404 | RoomHiddenError):
        # A refusal about a room one may not know of is recorded as what it is and
        # answered exactly as a room that does not exist.
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(detail=str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = str(exc.auth_header)  # type: ignore[attr-defined]
    if isinstance(exc, HeaderRefused):
        return problem_response(
            status=exc.status_code,
            code="invalid",
            detail=f"{exc.header}: {exc.error['detail']}",
            errors=[exc.error],
            request=request,
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = list(_field_errors(exc.detail))
        if request is not None and _input_is_query(request):
            errors = [_as_parameter(error) for error in errors]
        return problem_response(
            status=exc.status_code,
            code="invalid",
            detail=_validation_summary(errors),
            errors=errors,
            request=request,
        )
    if isinstance(exc, exceptions.Throttled):
        raw_wait = getattr(exc, "wait", None)
        wait = None if raw_wait is None else max(1, math.ceil(raw_wait))
        if wait is not None:
            headers["Retry-After"] = str(wait)
        return problem_response(
            status=exc.status_code,
            code="throttled",
            detail=throttled_detail(wait),
            request=request,
            headers=headers,
        )
    return problem_response(
        status=exc.status_code,
        code=_code_of(exc),
        detail=str(exc.detail),
        request=request,
        headers=headers,
    )


def server_error(request: HttpRequest | None) -> HttpResponse:
    return problem_response(
        status=500,
        code="server_error",
        detail="Internal error. Quote the request id to support.",
        request=request,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    """DRF's ``EXCEPTION_HANDLER``: every exception as a problem response; a 500 (logged,
    nothing of the exception shown) for any the client did not cause."""
    # Imported here: DRF imports this module while ``rest_framework.views`` loads.
    from rest_framework.views import set_rollback

    drf_request = context.get("request")
    request = drf_request._request if isinstance(drf_request, Request) else None
    set_rollback()
    response = problem_for(exc, request)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return server_error(request)
    return response


def api_error_handler(
    fallback: Callable[..., HttpResponse], status_code: int
) -> Callable[..., HttpResponse]:
    """A Django ``handler400/403/404`` (``safechat.urls``): problem details under
    ``/api/`` (a route no view matches, a body refused while middleware read it), the
    portal's page (``fallback``) elsewhere."""

    def handler(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if not is_api_path(request.path):
            return fallback(request, exception)
        meant = _slash_meant(request) if status_code == 404 else None
        if meant is not None:
            return problem_response(
                status=404,
                code="not_found",
                detail=f"No such endpoint: did you mean {meant}? (Most API paths end with a "
                "slash; a few, such as the audit export and an upload, do not.)",
                request=request,
            )
        if exception is None:
            exception = {400: SuspiciousOperation(), 403: PermissionDenied(), 404: Http404()}[
                status_code
            ]
        response = problem_for(exception, request)
        return response if response is not None else server_error(request)

    return handler


def _slash_meant(request: HttpRequest) -> str | None:
    """The endpoint's path if the request's names one but for its trailing slash (missing,
    or added to a path that takes none), else None."""
    path = request.path_info
    other = path[:-1] if path.endswith("/") else f"{path}/"
    if other in ("", "/") or not is_valid_path(other, getattr(request, "urlconf", None)):
        return None
    return f"{request.path[: len(request.path) - len(path)]}{other}"


def api_server_error_handler(fallback: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A Django ``handler500``: problem details under ``/api/``, the portal's page elsewhere."""

    def handler(request: HttpRequest) -> HttpResponse:
        return server_error(request) if is_api_path(request.path) else fallback(request)

    return handler


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, bounded, with a 4xx for every body a client can get wrong.

    Reads at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (more: ``RequestDataTooBig``,
    answered 413; DRF's own parser reads a stream without that limit); a body that is not
    UTF-8 (RFC 8259, section 8.1), not JSON, nested past the interpreter's recursion
    limit, or naming a member twice in one object (which would count is a guess, and a
    proxy or a signature may have read the other) is a ``ParseError`` (400) with its own
    code.
    """

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ParseError(
                "The body is not valid UTF-8.", code="malformed_utf8"
            ) from None
        try:
            data = json.loads(
                text,
                parse_constant=json.strict_constant if self.strict else None,
                object_pairs_hook=object_of_unique_names,
            )
        except RecursionError:
            raise exceptions.ParseError(
                "The JSON body is nested too deeply.", code="nesting_too_deep"
            ) from None
        except DuplicateName as exc:  # safechat.json_input: the same rule as the socket's
            raise exceptions.ParseError(
                f"The JSON body names {exc.name} twice in one object.", code="duplicate_key"
            ) from None
        except ValueError as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}.") from None
        _refuse_lone_surrogate(data)
        return data


def _refuse_lone_surrogate(data: Any) -> None:
    """Refuse a body with a lone surrogate (``"\\ud800"``) in any string or member name,
    as a field error at the string (at the object, for a name), code
    ``surrogate_characters_not_allowed`` (DRF's own for a string field): such text cannot
    be written as UTF-8 (RFC 8259 8.2, RFC 7493 2.1), so it is never stored, nor quoted
    back in an error (a choice's, an unknown member's) that could not be encoded."""
    found = lone_surrogate(data)
    if found is None:
        return
    path, code_point, in_name = found
    where = "A member's name holds" if in_name else "Holds"
    error: Any = [
        ErrorDetail(
            f"{where} a lone surrogate character, {code_point}: not text.",
            code="surrogate_characters_not_allowed",
        )
    ]
    for part in reversed(path or ("non_field_errors",)):
        error = {part: error}
    raise exceptions.ValidationError(error)


# The name the request budget is reported under (``RateLimit-Policy``).
API_POLICY = "api"


class ApiRequestThrottle(throttling.BaseThrottle):
    """DRF's throttle of every API request: each request of a signed-in user (session or
    token; one budget for both) counts against ``SAFECHAT_API_RATE_LIMIT`` in the
    project's moving window (``safechat.ratelimit``); past it, 429 ``throttled`` with
    ``Retry-After``. Its state is reported as the ``api`` policy in the ``RateLimit``
    headers of the answer (``safechat.middleware.ApiResponseMiddleware``), beside the
    budget of a write the request also counted against. DRF runs it after authentication
    and the permission checks: a request refused before (401, 403) counts against
    nothing here (refused tokens have their own budget, per address)."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True
        self._wait = rate_hit(
            Rate.of(settings.SAFECHAT_API_RATE_LIMIT), "api", str(user.pk), policy=API_POLICY
        )
        return self._wait is None

    def wait(self) -> float | None:
        return None if self._wait is None else float(self._wait)


class IdempotencyKeyHonoured(permissions.BasePermission):
    """Refuses an ``Idempotency-Key`` on a write that does not honour one (400 ``invalid``,
    the error naming the header, code ``unknown``), after authentication and the scope
    checks. A key only makes a retry safe where the view reads it (posting a message:
    the view's ``idempotency_key_methods``); anywhere else a retried creation would
    create twice while the client believed it safe, so the key is refused, never
    ignored. A read (GET, HEAD, OPTIONS) writes nothing, so a key there is harmless and
    left alone."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        method = (request.method or "").upper()
        if method in permissions.SAFE_METHODS or IDEMPOTENCY_KEY not in request.headers:
            return True
        if method in getattr(view, "idempotency_key_methods", ()):
            return True
        if not _view_handles(view, method):
            return True  # the method is not allowed here: its 405 comes first
        raise HeaderRefused(
            header=IDEMPOTENCY_KEY,
            detail="This operation does not take an Idempotency-Key (only posting a "
            "message does): a retry of it would not be made safe by one.",
            code="unknown",
        )


def _view_handles(view: APIView, method: str) -> bool:
    """Whether ``view`` answers ``method`` at all (else DRF answers 405)."""
    name = method.lower()
    return name in view.http_method_names and hasattr(view, name)


class ApiMetadata(SimpleMetadata):
    """An ``OPTIONS`` answer: what the route renders and parses, never its docstring
    (it speaks of the implementation, not of the contract)."""

    def determine_metadata(self, request: Request, view: APIView) -> dict[str, Any]:
        metadata = dict(super().determine_metadata(request, view))
        metadata.pop("description", None)
        return metadata


# --- the schema: every operation documents its problem responses ------------------

# A string that must not be blank has a character that is not white space (what
# ``str.strip`` removes; refused with ``blank``, or by the service, otherwise).
NOT_BLANK_PATTERN = r"\S"


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """The schema of ``safechat.fields.StrictCharField``: a string, and when blank is
    refused, one with a character that is not white space (``NOT_BLANK_PATTERN``)."""

    target_class = "safechat.fields.StrictCharField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        if not self.target.allow_blank:
            schema["pattern"] = NOT_BLANK_PATTERN
        return schema


class InputSerializerSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """The schema of every ``safechat.fields.InputSerializer`` (every request body): its
    fields, and ``additionalProperties: false``, as the server refuses any other member."""

    target_class = "safechat.fields.InputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        body = self.target if isinstance(self.target, type) else type(self.target)
        if body.__dict__.get("__doc__") is None:
            # Not the base class's docstring (it speaks of the implementation).
            schema.pop("description", None)
        return schema


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A problem document (RFC 9457), the body of every error "
    "(`application/problem+json`).",
    "required": ["type", "title", "status", "detail", "instance", "code", "request_id"],
    "properties": {
        "type": {
            "type": "string",
            "description": "`urn:safechat:problem:` followed by `code`.",
            "example": "urn:safechat:problem:invalid",
        },
        "title": {"type": "string", "description": "Fixed for each code."},
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
        "detail": {"type": "string", "description": "What went wrong this time."},
        "instance": {"type": "string", "description": "The path of the request."},
        "code": {
            "type": "string",
            "description": "Stable and machine-readable; see docs/api.md for the list.",
            "example": "invalid",
        },
        "request_id": {
            "type": "string",
            "description": "The response's `X-Request-ID`; quote it to support.",
        },
        "errors": {
            "type": "array",
            "description": "Validation only: each refused field.",
            "items": {
                "type": "object",
                "required": ["code", "detail"],
                "properties": {
                    "pointer": {
                        "type": "string",
                        "description": "JSON pointer (RFC 6901) into the body, as a URI "
                        "fragment; `#` is the whole body.",
                        "example": "#/name",
                    },
                    "parameter": {
                        "type": "string",
                        "description": "The query parameter refused (requests without a "
                        "body), or the header (`Idempotency-Key`).",
                    },
                    "code": {"type": "string", "example": "required"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}

_PROBLEM_RESPONSES = {
    "400": "Invalid input, malformed body or parameters (code `invalid`, `parse_error`, "
    "`malformed_utf8`, `nesting_too_deep`, ...).",
    "401": "No credentials, or invalid ones (`not_authenticated`, `authentication_failed`).",
    "403": "Not allowed: the token's scope, the second factor, the caller's role in the "
    "room, CSRF for a session (`permission_denied`, `second_factor_required`).",
    "404": "No such object, or none the caller may see (`not_found`).",
    "405": "Method not allowed on this path (`method_not_allowed`); `Allow` lists the others.",
    "406": "No answer the request's `Accept` admits (`not_acceptable`): answers are JSON.",
    # Any request may carry a body, and one over the limit is refused before routing.
    "413": "Request body over the limit (`payload_too_large`).",
    "429": "Too many requests (`throttled`); wait `Retry-After` seconds.",
}
# Any request may name a content coding, refused before routing (safechat.middleware).
_CODING_PROBLEM = (
    "A body in a content coding (`unsupported_content_encoding`, with `Accept-Encoding: "
    "identity`): send it as it is."
)
_BODY_PROBLEM_RESPONSES = {
    "415": "A body that is not `application/json` (`unsupported_media_type`), or one in a "
    "content coding (`unsupported_content_encoding`, with `Accept-Encoding: identity`).",
}
_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'The challenge: `Bearer realm="api"`.',
        }
    },
    "415": {
        "Accept-Encoding": {
            "schema": {"type": "string"},
            "description": "`identity`, on a refused content coding only (RFC 9110, 12.5.3).",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds until the request may be retried.",
        }
    },
}


# On every answer to a request that counted against a limit (draft-ietf-httpapi-
# ratelimit-headers): the request budget of every signed-in request, and a write's own.
_RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'Each limit the request counted against: `"<policy>";q=<quota>;'
        'w=<window seconds>`, comma-separated (`"api"`, every request; a write\'s own).',
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'What remains of each: `"<policy>";r=<remaining>;t=<seconds until '
        "the oldest counted request leaves the window>`.",
    },
}


def problem_responses_hook(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """A drf-spectacular postprocessing hook: the ``Problem`` schema, and for every
    operation each problem response it can answer (never replacing the description of
    one it documents itself, only giving it the problem body), and on every response the
    ``RateLimit`` headers it may carry."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method == "head":
                _head_responses(operation)
                continue
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            documented = dict(_PROBLEM_RESPONSES)
            documented.update(
                _BODY_PROBLEM_RESPONSES if "requestBody" in operation else {"415": _CODING_PROBLEM}
            )
            responses = operation.setdefault("responses", {})
            for code, description in sorted(documented.items()):
                answer: dict[str, Any] = {"description": description, "content": content}
                if code in _HEADERS:
                    answer["headers"] = _HEADERS[code]
                responses.setdefault(code, answer)
            for code, answer in responses.items():  # those an operation names itself too
                if str(code)[0] in "45" and not answer.get("content"):
                    answer["content"] = content
                headers = answer.setdefault("headers", {})
                for name, header in _RATE_LIMIT_HEADERS.items():
                    headers.setdefault(name, header)
    return result


def _head_responses(operation: dict[str, Any]) -> None:
    """A HEAD operation's responses: the problem statuses it can answer, with no body
    (a HEAD response has none), and the ``RateLimit`` headers on each."""
    responses = operation.setdefault("responses", {})
    for code, description in sorted(_PROBLEM_RESPONSES.items()):
        answer: dict[str, Any] = {"description": description}
        if code in _HEADERS:
            answer["headers"] = dict(_HEADERS[code])
        responses.setdefault(code, answer)
    for answer in responses.values():
        answer.pop("content", None)
        headers = answer.setdefault("headers", {})
        for name, header in _RATE_LIMIT_HEADERS.items():
            headers.setdefault(name, header)


# Media types the API's JSON answers also satisfy: its errors are problem details
# (RFC 9457), JSON of their own type, so a client asking for those is answered.
_JSON_ALIASES = {"application/json": ("application/json", "application/problem+json")}


class ApiContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with ``Accept`` read as RFC 9110 (section 12.5.1) says: each
    renderer's quality is that of the most specific range that matches its type, and a
    quality of 0 means "not acceptable" (``application/json;q=0`` is a 406 even beside
    ``*/*``). ``application/problem+json`` is answered as ``application/json`` is. No
    acceptable renderer: ``NotAcceptable`` (406 ``not_acceptable``)."""

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        if format_suffix:
            chosen: tuple[Any, str] = super().select_renderer(request, renderers, format_suffix)
            return chosen
        header = request.META.get("HTTP_ACCEPT", "") or "*/*"
        ranges = list(_accept_ranges(str(header)))
        best: tuple[float, Any] | None = None
        for renderer in renderers:
            quality = _quality(renderer.media_type, ranges)
            if quality > 0 and (best is None or quality > best[0]):
                best = (quality, renderer)
        if best is None:
            raise exceptions.NotAcceptable(available_renderers=list(renderers))
        return best[1], best[1].media_type


def _accept_ranges(header: str) -> Iterator[tuple[str, str, float]]:
    """Each media range of an ``Accept`` value as (type, subtype, quality); a malformed
    quality counts as 1, a malformed range is skipped."""
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        kind, _, subtype = media.lower().partition("/")
        if not kind or not subtype:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(1.0, max(0.0, float(value.strip())))
                except ValueError:
                    quality = 1.0
        yield kind, subtype, quality


def _quality(media_type: str, ranges: list[tuple[str, str, float]]) -> float:
    """The quality ``ranges`` give ``media_type`` (or one of its aliases): that of the
    most specific matching range (``type/subtype`` over ``type/*`` over ``*/*``), 0 if
    none matches."""
    names = _JSON_ALIASES.get(media_type, (media_type,))
    best: tuple[int, float] | None = None
    for kind, subtype, quality in ranges:
        for name in names:
            want_kind, _, want_subtype = name.partition("/")
            if (kind, subtype) == (want_kind, want_subtype):
                rank = 2
            elif kind == want_kind and subtype == "*":
                rank = 1
            elif (kind, subtype) == ("*", "*"):
                rank = 0
            else:
                continue
            if best is None or rank > best[0] or (rank == best[0] and quality > best[1]):
                best = (rank, quality)
    return 0.0 if best is None else best[1]
