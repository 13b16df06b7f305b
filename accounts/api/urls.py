from django.urls import path

from accounts.api import views

app_name = "accounts-api"

urlpatterns = [
    path("me/", views.ProfileApi.as_view(), name="me"),
    path("tokens/", views.TokenListCreateApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>/", views.TokenRevokeApi.as_view(), name="token-revoke"),
]
