from django.urls import path

from audit.api.views import AuditExportApi

app_name = "audit-api"

urlpatterns = [
    path("export", AuditExportApi.as_view(), name="export"),
]
