"""The baseline the vault is measured against: Django's own way to take and serve a file.

An upload is a multipart form with a ``forms.FileField``, parsed by Django (the body
spooled, then the part written to a temporary upload file) and saved with the default
storage, as a ``models.FileField`` would; a download is a ``FileResponse`` of the stored
file. No encryption, no scan, no audit: what a plain Django site does.
"""

from __future__ import annotations

from django import forms
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


class PlainUploadForm(forms.Form):
    file = forms.FileField()


@csrf_exempt
def plain_upload(request: HttpRequest) -> HttpResponse:
    form = PlainUploadForm(request.POST, request.FILES)
    if request.method != "POST" or not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    upload = form.cleaned_data["file"]
    name = default_storage.save(f"bench/{upload.name}", upload)
    return JsonResponse({"name": name, "size": upload.size}, status=201)


def plain_download(request: HttpRequest, name: str) -> FileResponse:
    return FileResponse(default_storage.open(f"bench/{name}", "rb"), as_attachment=True)
