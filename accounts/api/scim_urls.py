"""SCIM 2.0 routes (``/scim/v2/``). Identity providers append ``/Users``,
``/Users/<id>``, ``/Groups`` and ``/Groups/<id>`` to the base URL without a trailing
slash; both forms are served."""

from django.urls import re_path

from accounts.api import scim

app_name = "scim"

urlpatterns = [
    re_path(r"^Users/?$", scim.ScimUsersApi.as_view(), name="users"),
    re_path(r"^Users/(?P<user_id>[^/]{1,64})/?$", scim.ScimUserApi.as_view(), name="user"),
    re_path(r"^Groups/?$", scim.ScimGroupsApi.as_view(), name="groups"),
    re_path(r"^Groups/(?P<group_id>[^/]{1,64})/?$", scim.ScimGroupApi.as_view(), name="group"),
    re_path(r"^ResourceTypes/?$", scim.ScimResourceTypesApi.as_view(), name="resource-types"),
    re_path(r"^Schemas/?$", scim.ScimSchemasApi.as_view(), name="schemas"),
    re_path(
        r"^ServiceProviderConfig/?$",
        scim.ScimServiceProviderConfigApi.as_view(),
        name="service-provider-config",
    ),
]
