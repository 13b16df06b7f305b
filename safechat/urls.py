from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.admin_site import SafeChatAdminSite
from safechat import views

# The admin requires a verified second factor (django-otp's documented swap).
admin.site.__class__ = SafeChatAdminSite

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("accounts/webauthn/", include("accounts.webauthn_urls")),
    path("api/v1/accounts/", include("accounts.api.urls")),
    path("api/v1/audit/", include("audit.api.urls")),
    path("api/v1/", include("rooms.api.urls")),
    path("api/v1/", include("files.api.urls")),
    path("rooms/", include("rooms.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
