"""The vault's HTTP edge: the tus upload endpoints, the file list and metadata, downloads.

Thin: each view parses its input, calls ``files.services`` or ``files.selectors`` and
maps the outcome to a status. The tus views run behind ``files.asgi.UploadHandler``,
which hands a PATCH its body as a stream (never spooled); reached any other way, a PATCH
is refused without reading its body. Authentication, CSRF, the second factor and token
scopes are DRF's defaults, as for every API view.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from django.http import Http404, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken, User
from accounts.session_policy import credential_still_valid
from files import selectors, services, tus
from files.asgi import BODY_ATTRIBUTE, UploadBody
from files.content import FileIntegrityError
from files.models import StoredFile
from files.scanner import ScannerState, scanner_state
from files.selectors import DownloadCutError, FileView
from rooms.selectors import room_get_for_user
from safechat.actions import Refused
from safechat.fields import no_body_check
from safechat.pagination import cursor_from_query, cursor_parameters, page_of, page_serializer
from safechat.problems import problem_response
from safechat.request_context import acting_kept
from safechat.streaming import streamed_body

NO_STORE = "no-store"


def _user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):  # IsAuthenticated runs first; this never happens
        raise NotAuthenticated()
    return user


def _tus_response(
    status_code: int, headers: dict[str, str] | None = None, data: Any = None
) -> Response:
    response = Response(data, status=status_code)
    response["Tus-Resumable"] = tus.TUS_VERSION
    response["Cache-Control"] = NO_STORE
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _problem(request: Request, status_code: int, code: str, detail: str) -> HttpResponse:
    """A tus error: a problem document (RFC 9457) that keeps ``Tus-Resumable``."""
    return problem_response(
        status=status_code,
        code=code,
        detail=detail,
        request=request._request,
        headers={"Tus-Resumable": tus.TUS_VERSION},
    )


_REFUSAL_STATUS: dict[type[Refused], tuple[int, str]] = {
    services.UploadInvalidError: (400, "invalid"),
    services.UploadTooLargeError: (413, "too_large"),
    services.UploadQuotaError: (413, "room_quota_exceeded"),
    services.UploadTypeError: (422, "file_type_refused"),
    services.UploadConflictError: (409, "offset_conflict"),
    services.UploadGoneError: (410, "gone"),
}


def _refusal(request: Request, refused: Refused) -> HttpResponse:
    status_code, code = _REFUSAL_STATUS.get(type(refused), (403, "permission_denied"))
    return _problem(request, status_code, code, refused.message)


def _expires(stored: StoredFile) -> dict[str, str]:
    if stored.state != StoredFile.State.UPLOADING:
        return {}
    return {"Upload-Expires": format_datetime(stored.expires_at, usegmt=True)}


# A tus header error's status and code: the most specific class first.
_TUS_HEADER_STATUS: tuple[tuple[type[tus.TusHeaderError], int, str], ...] = (
    (tus.TusVersionError, 412, "tus_version"),
    (tus.TusContentTypeError, 415, "content_type"),
    (tus.TusHeaderError, 400, "bad_header"),
)


# Every tus request names the protocol's version; another (or none) is answered 412, as
# tus 1.0.0 requires.
TUS_RESUMABLE = OpenApiParameter(
    "Tus-Resumable",
    str,
    OpenApiParameter.HEADER,
    required=True,
    enum=[tus.TUS_VERSION],
    description="The tus protocol version: 1.0.0.",
)
TUS_VERSION_REFUSED = OpenApiResponse(description="Tus-Resumable missing or not 1.0.0")
BYTE_COUNT = {"type": "integer", "format": "int64", "minimum": 0}


class _TusApi(APIView):
    """Common to the tus views: OPTIONS says what the server speaks; every answer, the
    errors DRF raises included (401, 403, 404, 429), carries ``Tus-Resumable`` (tus 1.0.0)
    and is never cached. A malformed tus header and a service's refusal are answered
    here, one way for every tus view."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, tus.TusHeaderError):
            status_code, code = next(
                (s, c) for kind, s, c in _TUS_HEADER_STATUS if isinstance(exc, kind)
            )
            answer = _problem(self.request, status_code, code, str(exc))
            if isinstance(exc, tus.TusVersionError):
                answer["Tus-Version"] = tus.TUS_VERSION  # tus 1.0.0: a 412 MUST say it
            return answer  # type: ignore[return-value]
        if isinstance(exc, Refused):
            return _refusal(self.request, exc)  # type: ignore[return-value]
        return super().handle_exception(exc)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = tus.TUS_VERSION
        response["Cache-Control"] = NO_STORE
        return response

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        from django.conf import settings

        return _tus_response(
            status.HTTP_204_NO_CONTENT,
            {
                "Tus-Version": tus.TUS_VERSION,
                "Tus-Extension": tus.TUS_EXTENSIONS,
                "Tus-Max-Size": str(settings.SAFECHAT_FILE_MAX_BYTES),
            },
        )


class UploadCreateApi(_TusApi):
    """tus creation: ``Upload-Length`` and ``Upload-Metadata`` (``filename``, ``filetype``)."""

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter("room_id", int, OpenApiParameter.PATH),
            TUS_RESUMABLE,
            OpenApiParameter(
                "Upload-Length",
                BYTE_COUNT,
                OpenApiParameter.HEADER,
                required=True,
                description="The file's size in bytes: a whole number from 0.",
            ),
            OpenApiParameter(
                "Upload-Metadata",
                str,
                OpenApiParameter.HEADER,
                description="tus metadata: 'filename <base64>' and optionally "
                "'filetype <base64>', comma-separated",
            ),
        ],
        responses={
            201: OpenApiResponse(description="created; Location is the upload's URL"),
            400: OpenApiResponse(description="a malformed header or an unacceptable name"),
            404: OpenApiResponse(description="no such room for you"),
            412: TUS_VERSION_REFUSED,
            413: OpenApiResponse(description="over the maximum file size or the room's quota"),
            422: OpenApiResponse(description="a name or declared type the type policy refuses"),
        },
        operation_id="uploads_create",
    )
    def post(self, request: Request, room_id: str) -> HttpResponseBase:
        actor = _user(request)
        tus.require_version(request.headers.get("Tus-Resumable"))
        if "Upload-Defer-Length" in request.headers:
            raise tus.TusHeaderError("deferred lengths are not supported: send Upload-Length")
        length = tus.parse_length(request.headers.get("Upload-Length"), "Upload-Length")
        metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
        room = room_get_for_user(user=actor, room_id=room_id)
        stored = services.upload_create(
            actor=actor,
            room=room,
            length=length,
            name=metadata.get("filename", metadata.get("name", "")),
            content_type=metadata.get("filetype", metadata.get("type", "")),
        )
        location = request.build_absolute_uri(reverse("api-upload", args=[stored.uid]))
        return _tus_response(status.HTTP_201_CREATED, {"Location": location, **_expires(stored)})


class UploadApi(_TusApi):
    """tus core and termination on one upload: HEAD (offset), PATCH (bytes), DELETE."""

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(
                description="The upload's state, in headers and no body (tus core): "
                "Upload-Offset (bytes received), Upload-Length, Tus-Resumable, Upload-Expires "
                "while it may take bytes, and SafeChat-Upload-State (uploading, pending_scan, "
                "available, infected or withheld); while pending_scan, SafeChat-Scanner (ready "
                "or unavailable)."
            ),
            404: OpenApiResponse(description="No upload of yours by this id."),
            410: OpenApiResponse(description="The upload was cancelled or has expired."),
        },
        operation_id="uploads_head",
        description="tus: how much of an upload the server has, to resume it with PATCH.",
    )
    def head(self, request: Request, upload_id: str) -> HttpResponseBase:
        stored = services.upload_for_uploader(actor=_user(request), upload_id=upload_id)
        unfinished = stored.state == StoredFile.State.UPLOADING
        if stored.state in (StoredFile.State.DELETED, StoredFile.State.EXPIRED) or (
            unfinished and not stored.upload_open
        ):
            # Past its expiry the upload takes no more bytes, swept or not: the client
            # learns it here, and starts a new one, rather than from a refused PATCH.
            return _problem(request, 410, "gone", "this upload was cancelled or expired")
        headers = {
            "Upload-Offset": str(stored.received_offset),
            "Upload-Length": str(stored.declared_length),
            # What became of a complete upload: pending_scan, available, infected or
            # withheld (the room archived, or the right to share lost, before its verdict).
            "SafeChat-Upload-State": str(stored.state),
            **_expires(stored),
        }
        if stored.state == StoredFile.State.PENDING_SCAN:
            # Why it waits: being scanned ("ready"), or waiting for a scanner that is not
            # configured or does not answer ("unavailable"); never released unscanned.
            ready = scanner_state() == ScannerState.READY
            headers["SafeChat-Scanner"] = "ready" if ready else "unavailable"
        return _tus_response(status.HTTP_200_OK, headers)

    @extend_schema(
        request={tus.OFFSET_CONTENT_TYPE: bytes},
        parameters=[
            TUS_RESUMABLE,
            OpenApiParameter(
                "Upload-Offset",
                BYTE_COUNT,
                OpenApiParameter.HEADER,
                required=True,
                description="Where this body starts, in bytes: the upload's current offset.",
            ),
        ],
        responses={
            204: OpenApiResponse(description="stored; Upload-Offset is the new offset"),
            409: OpenApiResponse(description="the offset is not the upload's"),
            410: OpenApiResponse(description="finished, cancelled or expired"),
            413: OpenApiResponse(description="the body runs past Upload-Length"),
            415: OpenApiResponse(description="Content-Type is not application/offset+octet-stream"),
            412: TUS_VERSION_REFUSED,
            422: OpenApiResponse(description="the content is refused by the type policy"),
        },
        operation_id="uploads_patch",
    )
    def patch(self, request: Request, upload_id: str) -> HttpResponseBase:
        actor = _user(request)
        tus.require_version(request.headers.get("Tus-Resumable"))
        tus.require_offset_content_type(request.headers.get("Content-Type"))
        offset = tus.parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
        declared = request.headers.get("Content-Length")
        content_length = None if declared is None else tus.parse_length(declared, "Content-Length")
        body = getattr(request._request, BODY_ATTRIBUTE, None)
        if not isinstance(body, UploadBody):
            # Only the upload handler streams a body; never let Django spool one.
            return _problem(
                request, 400, "not_streamed", "uploads are accepted on the upload endpoint only"
            )
        stored = services.upload_for_uploader(actor=actor, upload_id=upload_id)
        stored = services.upload_append(
            actor=actor,
            stored=stored,
            offset=offset,
            body=body.pieces(),
            body_length=content_length,
        )
        return _tus_response(
            status.HTTP_204_NO_CONTENT,
            {"Upload-Offset": str(stored.received_offset), **_expires(stored)},
        )

    @extend_schema(
        request=None,
        parameters=[TUS_RESUMABLE],
        responses={204: None, 404: None, 410: None, 412: TUS_VERSION_REFUSED},
        operation_id="uploads_terminate",
    )
    def delete(self, request: Request, upload_id: str) -> HttpResponseBase:
        actor = _user(request)
        tus.require_version(request.headers.get("Tus-Resumable"))
        stored = services.upload_for_uploader(actor=actor, upload_id=upload_id)
        services.upload_terminate(actor=actor, stored=stored)
        return _tus_response(status.HTTP_204_NO_CONTENT)


# --- Files: list, metadata, download -----------------------------------------------


class FileOutput(serializers.Serializer[FileView]):
    id = serializers.UUIDField(source="uid")
    room_id = serializers.IntegerField()
    name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField(help_text="bytes")
    sha256 = serializers.CharField(help_text="SHA-256 of the content, hex")
    uploader_id = serializers.IntegerField()
    uploaded_at = serializers.DateTimeField()
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, view: FileView) -> str:
        request = self.context["request"]
        url = reverse("api-file-download", args=[view.room_id, view.uid])
        return str(request.build_absolute_uri(url))


class FileUsageOutput(serializers.Serializer[selectors.FileUsage]):
    room_id = serializers.IntegerField()
    used_bytes = serializers.IntegerField(help_text="bytes the room's files take")
    quota_bytes = serializers.IntegerField(help_text="SAFECHAT_ROOM_FILE_QUOTA_BYTES")
    files = serializers.IntegerField(help_text="uploads in progress, pending scan, available")


class FileUsageApi(APIView):
    """A room's file storage against its quota; for the room's owners."""

    @extend_schema(responses=FileUsageOutput, operation_id="files_usage")
    def get(self, request: Request, room_id: str) -> Response:
        usage = selectors.room_file_usage(user=_user(request), room_id=room_id)
        response = Response(FileUsageOutput(usage).data)
        response["Cache-Control"] = NO_STORE
        return response


FilePage = page_serializer("FilePage", FileOutput(many=True))


class FileListApi(APIView):
    @extend_schema(
        parameters=[cursor_parameters(key="file position (`next_before`, `next_after`)")],
        responses=FilePage,
        operation_id="files_list",
    )
    def get(self, request: Request, room_id: str) -> Response:
        """The room's files you may open, newest first, paginated as every list is: the
        cursor is a file's position in the room (the ``next_before`` / ``next_after`` of a
        page)."""
        reader = _user(request)
        cursor = cursor_from_query(request.query_params)
        files = selectors.file_list_for_user(user=reader, room_id=room_id)
        page = page_of(files, cursor=cursor, newest_first=True)
        views = selectors.files_viewable(reader=reader, files=page.items)
        data = FileOutput(views, many=True, context={"request": request}).data  # type: ignore[arg-type]
        response = Response(page.as_json(data))
        response["Cache-Control"] = NO_STORE
        return response


def _file_in_room(reader: User, room_id: str, file_id: str) -> StoredFile:
    stored = selectors.file_get_for_user(user=reader, file_id=file_id)
    if str(stored.room_id) != str(room_id):
        raise Http404("no such file")
    return stored


def _integrity_failure(
    request: Request, reader: User, stored: StoredFile, reason: str
) -> HttpResponse:
    """A stored file that fails its check: the server's fault (500), audited, nothing sent."""
    services.file_integrity_failure_record(reader=reader, stored=stored, reason=reason)
    return problem_response(
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        code="integrity_failure",
        detail="The stored file failed its integrity check; the security team is notified.",
        request=request._request,
    )


class FileDetailApi(APIView):
    @extend_schema(responses=FileOutput, operation_id="files_get")
    def get(self, request: Request, room_id: str, file_id: str) -> HttpResponseBase:
        reader = _user(request)
        stored = _file_in_room(reader, room_id, file_id)
        try:
            view = selectors.file_view(reader=reader, stored=stored)
        except FileIntegrityError as exc:
            return _integrity_failure(request, reader, stored, exc.reason)
        response = Response(FileOutput(view, context={"request": request}).data)
        response["Cache-Control"] = NO_STORE
        return response

    @extend_schema(
        request=None, responses={204: None, 403: None, 404: None}, operation_id="files_delete"
    )
    def delete(self, request: Request, room_id: str, file_id: str) -> Response:
        actor = _user(request)
        stored = _file_in_room(actor, room_id, file_id)
        no_body_check(request)
        services.file_delete(actor=actor, stored=stored)
        return Response(status=status.HTTP_204_NO_CONTENT)


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name as RFC 6266 / RFC 8187
    ``filename*`` (UTF-8, percent-encoded)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


_RANGE_NUMBER = re.compile(r"[0-9]{1,19}")


def parse_range(value: str | None, size: int) -> tuple[int, int] | bool | None:
    """A single ``bytes=a-b`` / ``a-`` / ``-n`` range: (first, last); None without a Range
    header (or one we ignore, per RFC 9110: several ranges); False if unsatisfiable."""
    if not value:
        return None
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, sep, last_s = spec.strip().partition("-")
    # ASCII digits only, at most 19 of them (``str.isdigit`` also takes "²" and "٣").
    if not sep or not all(_RANGE_NUMBER.fullmatch(n) or n == "" for n in (first_s, last_s)):
        return None
    if first_s == "":
        if not last_s or int(last_s) == 0 or size == 0:
            return False
        return max(0, size - int(last_s)), size - 1
    first = int(first_s)
    last = size - 1 if last_s == "" else min(int(last_s), size - 1)
    if first >= size or last < first:
        return False
    return first, last


# An entity tag (RFC 9110, section 8.8.3): optionally weak, then a quoted string of
# visible ASCII (or obs-text) other than the double quote.
_ENTITY_TAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')


def if_range_allows(value: str | None, etag: str) -> bool:
    """Whether a Range may be served partially under ``If-Range: value`` (RFC 9110,
    section 13.1.5), for a representation whose strong entity tag is ``etag``.

    No If-Range: yes. Otherwise only an entity tag that matches ``etag`` by the strong
    comparison (section 8.8.3.2) does: a weak tag never matches; an HTTP-date cannot
    match (downloads carry no Last-Modified), nor can a malformed value. When it does not
    match, the server ignores the Range and sends the whole file (200), never a part of
    different bytes.
    """
    if value is None:
        return True
    candidate = value.strip(" \t")  # optional whitespace (RFC 9110, section 5.6.3)
    match = _ENTITY_TAG.fullmatch(candidate)
    return match is not None and match.group(1) is None and candidate == etag


class FileDownloadApi(APIView):
    # Errors answer JSON; the content itself is a StreamingHttpResponse, never rendered.
    renderer_classes = (JSONRenderer,)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Range",
                str,
                OpenApiParameter.HEADER,
                description="One byte range, `bytes=first-last`, `bytes=first-` or "
                "`bytes=-suffix`: 206 with that part. Several ranges: the whole file.",
            ),
            OpenApiParameter(
                "If-Range",
                str,
                OpenApiParameter.HEADER,
                description="The `ETag` of an earlier answer: the Range is served only if "
                "it still matches (a strong comparison); otherwise the whole file (200).",
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                response=bytes, description="the whole file; ETag is its strong validator"
            ),
            (206, "application/octet-stream"): OpenApiResponse(
                response=bytes, description="the range asked for, with Content-Range and ETag"
            ),
            404: None,
            416: None,
        },
        operation_id="files_download",
    )
    def get(self, request: Request, room_id: str, file_id: str) -> HttpResponseBase:
        reader = _user(request)
        stored = _file_in_room(reader, room_id, file_id)
        try:
            view = selectors.file_view(reader=reader, stored=stored)
        except FileIntegrityError as exc:
            return _integrity_failure(request, reader, stored, exc.reason)
        missing = selectors.file_blobs_missing(stored)
        if missing:
            return _integrity_failure(
                request, reader, stored, f"blob missing (segment {missing[0]})"
            )
        size = view.size
        etag = selectors.file_etag(stored)
        wanted = parse_range(request.headers.get("Range"), size)
        if wanted is not None and not if_range_allows(request.headers.get("If-Range"), etag):
            # RFC 9110, section 13.1.5: the client's copy is not this file: all of it.
            wanted = None
        if wanted is False:
            return problem_response(
                status=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                code="range_not_satisfiable",
                detail=f"the range asked for is not within the file's {size} bytes",
                request=request._request,
                headers={"Content-Range": f"bytes */{size}"},
            )
        first, last = wanted if isinstance(wanted, tuple) else (0, size - 1)
        services.file_download_record(actor=reader, stored=stored, first=first, last=last)
        chunks = selectors.file_download_stream(
            reader=reader,
            stored=stored,
            first=first,
            last=last,
            still_allowed=credential_still_valid(
                user=request.user,
                session=request._request.session,
                token=request.auth if isinstance(request.auth, ApiToken) else None,
            ),
        )
        # Read after this view returns: each chunk under this request's acting context.
        body = acting_kept(_ended_on_failure(chunks))
        response = StreamingHttpResponse(
            # Under ASGI an async iterator, or Django would read a sync one into a list.
            streamed_body(request._request, body),
            status=206 if isinstance(wanted, tuple) else 200,
            content_type=view.content_type,
        )
        response["Content-Length"] = str(max(0, last - first + 1))
        if isinstance(wanted, tuple):
            response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = etag
        response["Content-Disposition"] = content_disposition(view.name)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = NO_STORE
        response["X-SafeChat-SHA256"] = view.sha256
        # Plaintext: a reverse proxy passes it on, never to a temporary file of its own
        # (nginx buffers a response to disk when the client reads slower than we send).
        response["X-Accel-Buffering"] = "no"
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)


class FilePreviewApi(APIView):
    # Errors answer JSON; the image is an HttpResponse of its own type, never rendered.
    renderer_classes = (JSONRenderer,)

    @extend_schema(
        responses={(200, "image/png"): bytes, (200, "image/jpeg"): bytes, 404: None},
        operation_id="files_preview",
        description=(
            "An image preview (at most 640 pixels on its longer side, PNG or JPEG, no "
            "metadata of the original) of a PNG, JPEG, WebP or GIF file, or of a PDF's first "
            "page (JPEG); 404 for a file without one. The same access rules as the download."
        ),
    )
    def get(self, request: Request, room_id: str, file_id: str) -> HttpResponseBase:
        reader = _user(request)
        stored = _file_in_room(reader, room_id, file_id)
        try:
            image, content_type = selectors.file_preview(reader=reader, stored=stored)
        except FileIntegrityError as exc:
            return _integrity_failure(request, reader, stored, exc.reason)
        response = HttpResponse(image, content_type=content_type)
        response["Content-Disposition"] = "inline"
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = NO_STORE
        response["X-Accel-Buffering"] = "no"  # as the download: never to a proxy's disk
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)


def _ended_on_failure(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Stop the body short (the client sees fewer bytes than Content-Length, a failed
    download) when the file fails its check or the reader's access ends."""
    try:
        yield from chunks
    except (FileIntegrityError, DownloadCutError):
        return
