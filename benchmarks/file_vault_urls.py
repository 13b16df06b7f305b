"""The product's URLs and the benchmark's baseline views (under /api/, token-checked paths)."""

from django.urls import path

from benchmarks.file_vault_app import views
from safechat.urls import handler400, handler403, handler404, handler500
from safechat.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("api/bench/plain/upload", views.plain_upload),
    path("api/bench/plain/download/<str:name>", views.plain_download),
    *product_urlpatterns,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
