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
from collections.abc import Iterator, Mapping
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
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
# The attributes a filter may name (RFC 7643 names are case-insensitive, 2.1).
FILTER_ATTRIBUTES = {"username": "userName", "externalid": "externalId"}
GROUP_FILTER_ATTRIBUTES = {"displayname": "displayName", "externalid": "externalId"}
# Members one request may name (a PUT's or a PatchOp's, all operations together).
MEMBERS_MAX = 1000
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


def filter_parse(text: str, attributes: Mapping[str, str] = FILTER_ATTRIBUTES) -> ScimFilter:
    """Parse the one filter SafeChat answers: ``<attribute> eq "..."`` with one of
    ``attributes`` (lower-cased name to its RFC 7643 spelling; Users: ``userName`` or
    ``externalId``, Groups: ``displayName`` or ``externalId``; RFC 7644, 3.4.2.2;
    attribute names and the operator case-insensitive, the value a JSON string). Raises
    ``ScimError`` (400, ``invalidFilter``) for anything else: another operator or
    attribute, ``and``/``or``, a value that is not a string, over ``FILTER_MAX_LENGTH``
    characters.

    >>> filter_parse('userName eq "Alice"')
    ScimFilter(attribute='userName', value='Alice')
    >>> filter_parse('username EQ "a\\\\"b"').value
    'a"b'
    """
    supported = " and ".join(f'{name} eq "..."' for name in attributes.values())
    if len(text) > FILTER_MAX_LENGTH:
        raise ScimError(400, "The filter is too long.", "invalidFilter")
    found = _FILTER.match(text)
    if found is None:
        raise ScimError(400, f"Only {supported} are supported.", "invalidFilter")
    attribute, operator, literal = found.groups()
    if attribute.lower() not in attributes or operator.lower() != "eq":
        raise ScimError(400, f"Only {supported} are supported.", "invalidFilter")
    try:
        value = json.loads(literal)
    except ValueError:
        raise ScimError(400, "The filter's value is not a valid string.", "invalidFilter") from None
    if not isinstance(value, str):
        raise ScimError(400, "The filter's value is not a valid string.", "invalidFilter")
    return ScimFilter(attribute=attributes[attribute.lower()], value=value)


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


def patch_operations(body: object) -> Iterator[tuple[str, str | None, object]]:
    """The operations of a PatchOp body (RFC 7644, 3.5.2), each as (``op`` lower-cased:
    add, replace or remove; ``path`` or None; ``value`` or ``_UNSET``), the envelope checked
    first, for Users and Groups alike. Raises ``ScimError`` (400): ``invalidSyntax`` (not a
    PatchOp, no operations or over ``PATCH_MAX_OPERATIONS``, an operation that is not an
    object, an unknown ``op``), ``invalidPath`` (a path that is not a string or too long)."""
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
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimError(400, "Each operation must be an object.", "invalidSyntax")
        op = operation.get("op")
        path = operation.get("path")
        if not isinstance(op, str) or op.lower() not in {"add", "replace", "remove"}:
            raise ScimError(400, "op must be add, replace or remove.", "invalidSyntax")
        if path is not None and (not isinstance(path, str) or len(path) > FILTER_MAX_LENGTH):
            raise ScimError(400, "path must be a string.", "invalidPath")
        yield op.lower(), path, operation.get("value", _UNSET)


def user_changes_from_patch(body: object) -> UserChanges:
    """The changes of a PatchOp body (RFC 7644, 3.5.2): ``add`` and ``replace`` of the
    attributes above, by ``path`` or as one object without a path; ``remove`` of
    ``externalId``, the names and the e-mail. Raises ``ScimError`` (400): ``invalidSyntax``
    (not a PatchOp, no operations or over ``PATCH_MAX_OPERATIONS``, an unknown ``op``),
    ``invalidPath`` (a path SafeChat cannot remove), ``invalidValue``."""
    changes = UserChanges()
    for op, path, value in patch_operations(body):
        if op == "remove":
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


# --- Groups (RFC 7643, 4.2) -------------------------------------------------------------

_MEMBER_FILTER = re.compile(
    r'^members\s*\[\s*value\s+eq\s+("(?:[^"\\]|\\.)*")\s*\]$', re.IGNORECASE
)


@dataclass(frozen=True)
class MemberOperation:
    """One change of a group's members, applied in the order sent: ``add`` and ``remove``
    the ``ids``, ``replace`` the whole list with them (``remove`` with no ids: all)."""

    op: str
    ids: tuple[str, ...]


@dataclass
class GroupChanges:
    """What a request asks of a Group: ``display_name``/``external_id`` None where it says
    nothing of them (``external_id`` "" clears it), and its member operations."""

    display_name: str | None = None
    external_id: str | None = None
    members: list[MemberOperation] = field(default_factory=list)

    def member_ids(self) -> set[str]:
        """Every member id the request names."""
        return {i for operation in self.members for i in operation.ids}


def _member_ids(value: object) -> tuple[str, ...]:
    """``members``' value: a list of objects whose ``value`` is a User's ``id`` (a string;
    Entra ID and Okta send ``[{"value": "<id>"}]``, with a ``display`` or ``$ref`` that is
    ignored); a single object is taken as a list of one."""
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScimError(400, "members must be a list of objects.", "invalidValue")
    ids = []
    for item in value:
        lowered = {str(k).lower(): v for k, v in item.items()}
        member = lowered.get("value")
        if not isinstance(member, str) or not member.strip():
            raise ScimError(400, "Each member needs a value, a User's id.", "invalidValue")
        kind = lowered.get("type")
        if isinstance(kind, str) and kind.lower() not in {"user", ""}:
            raise ScimError(400, "A group's members are Users only.", "invalidValue")
        ids.append(member.strip())
    return tuple(dict.fromkeys(ids))


def _group_set(changes: GroupChanges, path: str, value: object, op: str) -> None:
    """Apply one attribute ``path`` (lower-cased) of a Group with ``op`` (``add`` or
    ``replace``); ignore attributes SafeChat does not keep (``id`` and ``meta``, which a
    client may not change, among them: RFC 7644, 3.5.2)."""
    if path == "displayname":
        changes.display_name = _text(value, name="displayName", allow_empty=False)
    elif path == "externalid":
        changes.external_id = _text(value, name="externalId")
    elif path == "members":
        changes.members.append(MemberOperation(op=op, ids=_member_ids(value)))


def _group_members_checked(changes: GroupChanges) -> GroupChanges:
    if len(changes.member_ids()) > MEMBERS_MAX:
        raise ScimError(400, f"At most {MEMBERS_MAX} members per request.", "invalidValue")
    return changes


def group_from_resource(body: object) -> GroupChanges:
    """The Group of a POST or PUT body (RFC 7643, 4.2): ``displayName`` required,
    ``externalId`` (cleared if left out: PUT replaces, RFC 7644, 3.5.1) and ``members``
    (the whole list; none if left out). Raises ``ScimError`` (400, ``invalidSyntax`` for
    a body that is not a Group, ``invalidValue`` for a bad value or over ``MEMBERS_MAX``
    members)."""
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a Group object.", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or GROUP_SCHEMA not in schemas:
        raise ScimError(400, f"The body's schemas must include {GROUP_SCHEMA}.", "invalidSyntax")
    lowered = {str(k).lower(): v for k, v in body.items()}
    changes = GroupChanges(external_id="")
    _group_set(changes, "displayname", lowered.get("displayname"), "replace")
    if "externalid" in lowered:
        _group_set(changes, "externalid", lowered["externalid"], "replace")
    _group_set(changes, "members", lowered.get("members"), "replace")
    return _group_members_checked(changes)


def group_changes_from_patch(body: object) -> GroupChanges:
    """The changes of a PatchOp body on a Group (RFC 7644, 3.5.2), in the shapes Entra ID
    and Okta send (``op`` in any case):

    * ``add`` of ``members`` (a list of ``{"value": "<id>"}``), ``replace`` of ``members``
      (the whole list), of ``displayName`` or of ``externalId``, by ``path``, or as one
      object without a path (Okta: ``{"op": "replace", "value": {"id": ..., "displayName":
      ...}}``);
    * ``remove`` of ``members`` with a ``value`` list (Entra ID), of
      ``members[value eq "<id>"]`` (Okta), of all ``members`` (no value), of
      ``externalId``.

    Raises ``ScimError`` (400): ``invalidSyntax`` (not a PatchOp, no operations or over
    ``PATCH_MAX_OPERATIONS``, an unknown ``op``), ``noTarget`` (a ``remove`` without a
    path), ``invalidPath`` (a path that cannot be removed, another filter), ``mutability``
    (removing ``displayName``, which is required), ``invalidValue`` (also over
    ``MEMBERS_MAX`` members)."""
    changes = GroupChanges()
    for op, path, value in patch_operations(body):
        lowered = path.strip().lower() if isinstance(path, str) else None
        if op == "remove":
            if lowered is None:
                raise ScimError(400, "remove needs a path.", "noTarget")
            _group_remove(changes, path=str(path).strip(), lowered=lowered, value=value)
            continue
        if value is _UNSET:
            raise ScimError(400, "add and replace need a value.", "invalidValue")
        if lowered is None:
            if not isinstance(value, dict):
                raise ScimError(400, "Without a path, value must be an object.", "invalidValue")
            for name, item in value.items():
                _group_set(changes, str(name).lower(), item, op)
        elif lowered in {"displayname", "externalid", "members"}:
            _group_set(changes, lowered, value, op)
        elif lowered.startswith("members["):
            raise ScimError(400, "Only remove takes a members filter.", "invalidPath")
    return _group_members_checked(changes)


def _group_remove(changes: GroupChanges, *, path: str, lowered: str, value: object) -> None:
    if lowered == "members":
        ids = () if value is _UNSET or value is None else _member_ids(value)
        # No value: every member goes (RFC 7644, 3.5.2.2).
        changes.members.append(
            MemberOperation(op="remove", ids=ids) if ids else MemberOperation("replace", ())
        )
    elif lowered == "externalid":
        changes.external_id = ""
    elif lowered == "displayname":
        raise ScimError(400, "displayName is required; it cannot be removed.", "mutability")
    else:
        found = _MEMBER_FILTER.match(path)
        if found is None:
            raise ScimError(400, f"{path[:64]} cannot be removed.", "invalidPath")
        try:
            member = json.loads(found.group(1))
        except ValueError:
            raise ScimError(
                400, "The member filter's value is not a string.", "invalidPath"
            ) from None
        if not isinstance(member, str) or not member.strip():
            raise ScimError(400, "The member filter's value is not a string.", "invalidPath")
        changes.members.append(MemberOperation(op="remove", ids=(member.strip(),)))


def group_resource(
    *,
    group_id: str,
    display_name: str,
    external_id: str,
    members: list[dict[str, str]] | None,
    created: str,
    last_modified: str,
    location: str,
) -> dict[str, Any]:
    """A Group resource (RFC 7643, 4.2 and 3.1 ``meta``); ``members`` (each ``value``,
    ``display``, ``$ref``, ``type``) left out where None (``excludedAttributes=members``)."""
    resource: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "id": group_id,
        "displayName": display_name,
        "meta": {
            "resourceType": "Group",
            "created": created,
            "lastModified": last_modified,
            "location": location,
        },
    }
    if external_id:
        resource["externalId"] = external_id
    if members is not None:
        resource["members"] = members
    return resource


def resource_types(*, base_url: str) -> list[dict[str, Any]]:
    """The resource types served (RFC 7643, 6): User and Group, without extensions."""
    return [
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": name,
            "name": name,
            "endpoint": f"/{name}s",
            "description": description,
            "schema": schema,
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url}/ResourceTypes/{name}",
            },
        }
        for name, schema, description in (
            ("User", USER_SCHEMA, "A SafeChat account"),
            ("Group", GROUP_SCHEMA, "A group of accounts, mapped to roles and barrier groups"),
        )
    ]


def _attribute(
    name: str,
    *,
    kind: str = "string",
    required: bool = False,
    mutability: str = "readWrite",
    multi: bool = False,
    sub: list[dict[str, Any]] | None = None,
    uniqueness: str = "none",
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "required": required,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": uniqueness,
    }
    if kind == "string":
        found["caseExact"] = False
    if sub is not None:
        found["subAttributes"] = sub
    return found


def schemas(*, base_url: str) -> list[dict[str, Any]]:
    """The schemas of the attributes SafeChat keeps (RFC 7643, 7): the User's and the
    Group's subsets; a client may send others, which are ignored."""
    member = [
        _attribute("value", mutability="immutable"),
        _attribute("display", mutability="readOnly"),
        _attribute("$ref", kind="reference", mutability="immutable"),
        _attribute("type", mutability="immutable"),
    ]
    found = [
        (
            USER_SCHEMA,
            "User",
            [
                _attribute("userName", required=True, uniqueness="server", mutability="immutable"),
                _attribute(
                    "name",
                    kind="complex",
                    sub=[_attribute("givenName"), _attribute("familyName")],
                ),
                _attribute("displayName", mutability="readOnly"),
                _attribute("active", kind="boolean"),
                _attribute(
                    "emails",
                    kind="complex",
                    multi=True,
                    sub=[
                        _attribute("value"),
                        _attribute("type"),
                        _attribute("primary", kind="boolean"),
                    ],
                ),
            ],
        ),
        (
            GROUP_SCHEMA,
            "Group",
            [
                _attribute("displayName", required=True, uniqueness="server"),
                _attribute("members", kind="complex", multi=True, sub=member),
            ],
        ),
    ]
    return [
        {
            "schemas": [SCHEMA_SCHEMA],
            "id": schema,
            "name": name,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{schema}"},
        }
        for schema, name, attributes in found
    ]
