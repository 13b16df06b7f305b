from django.urls import path

from files.api import views

urlpatterns = [
    path("rooms/<str:room_id>/uploads/", views.UploadCreateApi.as_view(), name="api-uploads"),
    path("uploads/<str:upload_id>", views.UploadApi.as_view(), name="api-upload"),
    path("rooms/<int:room_id>/files/", views.FileListApi.as_view(), name="api-files"),
    path("rooms/<int:room_id>/files/usage", views.FileUsageApi.as_view(), name="api-files-usage"),
    path(
        "rooms/<int:room_id>/files/<str:file_id>/",
        views.FileDetailApi.as_view(),
        name="api-file",
    ),
    path(
        "rooms/<int:room_id>/files/<str:file_id>/download",
        views.FileDownloadApi.as_view(),
        name="api-file-download",
    ),
    path(
        "rooms/<int:room_id>/files/<str:file_id>/preview",
        views.FilePreviewApi.as_view(),
        name="api-file-preview",
    ),
]
