"""SCIM 2.0 (RFC 7643 core schema, RFC 7644 protocol): the small subset SafeChat serves,
read and written as plain data. No Django models, no database: the views
(``accounts/api/scim.py``) call the services with what this module parsed.

What is parsed: a User resource (``userName``, ``externalId``, ``name.givenName``,
``name.familyName``, the primary ``emails`` value, ``active``), a PatchOp request
(``add``/``replace`` of those attributes, by path or as one object; ``remove`` of the
names, the e-mail and ``externalId``), and the one filter identity providers send before
they create someone: ``userName eq "..."`` (or ``externalId eq "..."``). Anything else
that asks SafeChat to do something it does not do is refused with the error RFC 7644,
3.12 names (``invalidFilter``, ``invalidPath``, ``invalidValue``, ``invalidSyntax``,
``mutability``); attributes SafeChat does not keep (titles, addresses, phone numbers) are
ignored, as a service provider may (RFC 7644, 3.3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
MEDIA_TYPE = "application/scim+json"

FILTER_MAX_LENGTH = 512
VALUE_MAX_LENGTH = 255
PATCH_MAX_OPERATIONS = 50
PAGE_DEFAULT = 100
PAGE_MAX = 200
# The attributes a filter may name (RFC 7643 names are case-insensitive, 2.1).
FILTER_ATTRIBUTES = {"username": "userName", "externalid": "externalId"}
_FILTER = re.compile(r'^\s*([A-Za-z][A-Za-z0-9]*)\s+([A-Za-z]{2})\s+("(?:[^"\\]|\\.)*")\s*$')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ScimError(Exception):
    """A request SafeChat refuses, answered as RFC 7644, 3.12 says: ``status`` (HTTP),
    ``scim_type`` (the detail error keyword, or empty where the status says it all) and
    ``detail`` (human-readable; never a value the client did not send)."""

    def __init__(self, status: int, detail: str, scim_type: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def error_body(*, status: int, detail: str, scim_type: str = "") -> dict[str, Any]:
    """The error response body of RFC 7644, 3.12 (``status`` is a string there)."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


@dataclass(frozen=True)
class ScimFilter:
    """``attribute eq "value"``: ``attribute`` is ``userName`` or ``externalId``."""

    attribute: str
    value: str


def filter_parse(text: str) -> ScimFilter:
    """Parse the one filter SafeChat answers: ``userName eq "..."`` or ``externalId eq
    "..."`` (RFC 7644, 3.4.2.2; attribute names and the operator case-insensitive, the
    value a JSON string). Raises ``ScimError`` (400, ``invalidFilter``) for anything else:
    another operator or attribute, ``and``/``or``, a value that is not a string, over
    ``FILTER_MAX_LENGTH`` characters.

    >>> filter_parse('userName eq "Alice"')
    ScimFilter(attribute='userName', value='Alice')
    >>> filter_parse('username EQ "a\\\\"b"').value
    'a"b'
    """
    if len(text) > FILTER_MAX_LENGTH:
        raise ScimError(400, "The filter is too long.", "invalidFilter")
    found = _FILTER.match(text)
    if found is None:
        raise ScimError(
            400, 'Only userName eq "..." and externalId eq "..." are supported.', "invalidFilter"
        )
    attribute, operator, literal = found.groups()
    if attribute.lower() not in FILTER_ATTRIBUTES or operator.lower() != "eq":
        raise ScimError(
            400, 'Only userName eq "..." and externalId eq "..." are supported.', "invalidFilter"
        )
    try:
        value = json.loads(literal)
    except ValueError:
        raise ScimError(400, "The filter's value is not a valid string.", "invalidFilter") from None
    if not isinstance(value, str):
        raise ScimError(400, "The filter's value is not a valid string.", "invalidFilter")
    return ScimFilter(attribute=FILTER_ATTRIBUTES[attribute.lower()], value=value)


def page_parse(query: Mapping[str, str]) -> tuple[int, int]:
    """``startIndex`` (1-based, default 1) and ``count`` (default ``PAGE_DEFAULT``, at most
    ``PAGE_MAX``) of RFC 7644, 3.4.2.4: a value below 1 is taken as 1 and a negative count
    as 0, as the RFC says; one that is not an integer is ``invalidValue`` (400)."""

    def integer(name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        if not re.fullmatch(r"-?[0-9]{1,9}", raw):
            raise ScimError(400, f"{name} must be an integer.", "invalidValue")
        return int(raw)

    start = max(1, integer("startIndex", 1))
    count = min(PAGE_MAX, max(0, integer("count", PAGE_DEFAULT)))
    return start, count


_UNSET: Any = object()


@dataclass
class UserChanges:
    """What a request asks of a User: each attribute is ``None`` where it says nothing of
    it (left as it is), else the value asked (an empty string clears a name, the e-mail or
    ``externalId``)."""

    username: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    active: bool | None = None
    attributes: list[str] = field(default_factory=list)

    def details(self) -> dict[str, str]:
        """The details to write, by the service's names (names, e-mail, externalId)."""
        found = {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "external_id": self.external_id,
        }
        return {name: value for name, value in found.items() if value is not None}


def _text(value: object, *, name: str, allow_empty: bool = True) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ScimError(400, f"{name} must be a string.", "invalidValue")
    value = value.strip()
    if len(value) > VALUE_MAX_LENGTH or _CONTROL.search(value):
        raise ScimError(400, f"{name} is too long or has control characters.", "invalidValue")
    if not value and not allow_empty:
        raise ScimError(400, f"{name} is required.", "invalidValue")
    return value


def _active(value: object) -> bool:
    # Some providers (Entra ID) send booleans in PATCH as the strings "True"/"False".
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ScimError(400, "active must be true or false.", "invalidValue")


def _primary_email(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScimError(400, "emails must be a list of objects.", "invalidValue")
    if not value:
        return ""
    primary = [v for v in value if v.get("primary") is True]
    chosen = primary[0] if primary else value[0]
    return _text(chosen.get("value"), name="emails.value").lower()


def _set(changes: UserChanges, path: str, value: object) -> None:
    """Apply one attribute ``path`` (lower-cased) with ``value``; ignore attributes
    SafeChat does not keep."""
    if path == "username":
        changes.username = _text(value, name="userName", allow_empty=False)
    elif path == "externalid":
        changes.external_id = _text(value, name="externalId")
    elif path == "name.givenname":
        changes.first_name = _text(value, name="name.givenName")
    elif path == "name.familyname":
        changes.last_name = _text(value, name="name.familyName")
    elif path == "name":
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ScimError(400, "name must be an object.", "invalidValue")
        lowered = {str(k).lower(): v for k, v in value.items()}
        changes.first_name = _text(lowered.get("givenname"), name="name.givenName")
        changes.last_name = _text(lowered.get("familyname"), name="name.familyName")
    elif path == "emails":
        changes.email = _primary_email(value)
    elif path.startswith("emails[") and path.endswith("].value"):
        # Entra ID's form: emails[type eq "work"].value; SafeChat keeps one address.
        changes.email = _text(value, name="emails.value").lower()
    elif path == "active":
        changes.active = _active(value)
    else:
        return
    changes.attributes.append(path)


def user_from_resource(body: object) -> UserChanges:
    """The User of a POST or PUT body (RFC 7643, 4.1): ``userName`` required; the others
    as sent, an attribute left out is cleared (PUT replaces, RFC 7644, 3.5.1) except
    ``active``, which stays as it is unless sent. Raises ``ScimError`` (400,
    ``invalidSyntax`` for a body that is not a User, ``invalidValue`` for a bad value)."""
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a User object.", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or USER_SCHEMA not in schemas:
        raise ScimError(400, f"The body's schemas must include {USER_SCHEMA}.", "invalidSyntax")
    lowered = {str(k).lower(): v for k, v in body.items()}
    changes = UserChanges(first_name="", last_name="", email="", external_id="")
    _set(changes, "username", lowered.get("username"))
    for name in ("externalid", "name", "emails"):
        if name in lowered:
            _set(changes, name, lowered[name])
    if "active" in lowered:
        _set(changes, "active", lowered["active"])
    return changes


def user_changes_from_patch(body: object) -> UserChanges:
    """The changes of a PatchOp body (RFC 7644, 3.5.2): ``add`` and ``replace`` of the
    attributes above, by ``path`` or as one object without a path; ``remove`` of
    ``externalId``, the names and the e-mail. Raises ``ScimError`` (400): ``invalidSyntax``
    (not a PatchOp, no operations or over ``PATCH_MAX_OPERATIONS``, an unknown ``op``),
    ``invalidPath`` (a path SafeChat cannot remove), ``invalidValue``."""
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a PatchOp object.", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_SCHEMA not in schemas:
        raise ScimError(400, f"The body's schemas must include {PATCH_SCHEMA}.", "invalidSyntax")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not 0 < len(operations) <= PATCH_MAX_OPERATIONS:
        raise ScimError(
            400, f"Operations must list 1 to {PATCH_MAX_OPERATIONS} operations.", "invalidSyntax"
        )
    changes = UserChanges()
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimError(400, "Each operation must be an object.", "invalidSyntax")
        op = operation.get("op")
        path = operation.get("path")
        value = operation.get("value", _UNSET)
        if not isinstance(op, str) or op.lower() not in {"add", "replace", "remove"}:
            raise ScimError(400, "op must be add, replace or remove.", "invalidSyntax")
        if path is not None and (not isinstance(path, str) or len(path) > FILTER_MAX_LENGTH):
            raise ScimError(400, "path must be a string.", "invalidPath")
        if op.lower() == "remove":
            if path is None:
                raise ScimError(400, "remove needs a path.", "noTarget")
            if path.lower() not in {
                "externalid", "name.givenname", "name.familyname", "emails", "name",
            }:  # fmt: skip
                raise ScimError(400, f"{path} cannot be removed.", "invalidPath")
            _set(changes, path.lower(), None)
            continue
        if value is _UNSET:
            raise ScimError(400, "add and replace need a value.", "invalidValue")
        if path is None:
            if not isinstance(value, dict):
                raise ScimError(400, "Without a path, value must be an object.", "invalidValue")
            for name, item in value.items():
                _set(changes, str(name).lower(), item)
        else:
            _set(changes, path.lower(), value)
    return changes


def user_resource(
    *,
    user_id: str,
    username: str,
    external_id: str,
    first_name: str,
    last_name: str,
    display_name: str,
    email: str,
    active: bool,
    created: str,
    last_modified: str,
    location: str,
) -> dict[str, Any]:
    """A User resource (RFC 7643, 4.1 and 3.1 ``meta``), from an account's details."""
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": user_id,
        "userName": username,
        "name": {
            "givenName": first_name,
            "familyName": last_name,
            "formatted": f"{first_name} {last_name}".strip(),
        },
        "displayName": display_name,
        "active": active,
        "emails": [{"value": email, "type": "work", "primary": True}] if email else [],
        "meta": {
            "resourceType": "User",
            "created": created,
            "lastModified": last_modified,
            "location": location,
        },
    }
    if external_id:
        resource["externalId"] = external_id
    return resource


def list_response(
    *, resources: list[dict[str, Any]], total: int, start_index: int
) -> dict[str, Any]:
    """A ListResponse (RFC 7644, 3.4.2)."""
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def service_provider_config(*, documentation_uri: str = "") -> dict[str, Any]:
    """What SafeChat supports (RFC 7643, 5): PATCH, filtering (the subset above), no bulk,
    no sort, no ETags, no password change; bearer tokens."""
    return {
        "schemas": [CONFIG_SCHEMA],
        "documentationUri": documentation_uri,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": PAGE_MAX},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A SafeChat API token of scope scim, sent as "
                "Authorization: Bearer <token>.",
                "primary": True,
            }
        ],
    }
