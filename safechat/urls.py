from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.admin_site import SafeChatAdminSite
from compliance.admin_supervision import compliance_dashboard_view
from safechat import error_pages, monitoring, views
from safechat.api import api_error_handler, api_server_error_handler
from safechat.api_docs import ApiDocsRedocView, ApiDocsSwaggerView, ApiSchemaView, docs_view

# The admin requires a verified second factor (django-otp's documented swap).
admin.site.__class__ = SafeChatAdminSite

urlpatterns = [
    # A signed-in person lands in the chat; anyone else is sent to sign in by the
    # second-factor middleware first.
    path("", RedirectView.as_view(pattern_name="rooms:chat"), name="root"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Prometheus metrics, behind a bearer token (safechat/monitoring.py; 404 without one set).
    path("metrics", monitoring.metrics, name="metrics"),
    path("favicon.ico", error_pages.favicon, name="favicon"),
    path(
        "admin/compliance/dashboard/",
        admin.site.admin_view(compliance_dashboard_view),
        name="compliance-dashboard",
    ),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("accounts/webauthn/", include("accounts.webauthn_urls")),
    path("api/v1/accounts/", include("accounts.api.urls")),
    # An identity provider's provisioning (SCIM 2.0): a token of scope scim, nothing else.
    path("scim/v2/", include("accounts.api.scim_urls")),
    path("api/v1/audit/", include("audit.api.urls")),
    path("api/v1/", include("rooms.api.urls")),
    path("api/v1/", include("files.api.urls")),
    path("rooms/", include("rooms.urls")),
    path("api/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/docs/", docs_view(ApiDocsSwaggerView, url_name="api-schema"), name="api-docs"),
    path(
        "api/docs/redoc/",
        docs_view(ApiDocsRedocView, url_name="api-schema"),
        name="api-docs-redoc",
    ),
]

# Under /api/, Django's own errors (a route no view serves, a body refused while middleware
# read it) are problem details like every other API error; the portal shows its own pages.
handler400 = api_error_handler(error_pages.bad_request, 400)
handler403 = api_error_handler(error_pages.permission_denied, 403)
handler404 = api_error_handler(error_pages.page_not_found, 404)
handler500 = api_server_error_handler(error_pages.server_error)
