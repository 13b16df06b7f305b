"""Every route of the project is closed to anonymous and password-only sessions.

The routes are found by walking the URL resolver, so a route added tomorrow is
covered without touching this file; only the public allow-list is named here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from accounts.middleware import ENROLMENT_ROUTES, PUBLIC_ROUTES, UNVERIFIED_ROUTES
from accounts.models import User
from tests.accounts.factories import make_totp_device, sign_in_client

# Changing the public surface must change this test too.
EXPECTED_PUBLIC = {
    "healthz",
    "readyz",
    "metrics",  # its own bearer token: 404/401 without it (tests/safechat/test_metrics.py)
    "favicon",
    "accounts:sign-in",
    "accounts:sso-start",
    "accounts:sso-callback",
    "accounts:oidc-backchannel-logout",
    "accounts:saml-metadata",
    "accounts:saml-start",
    "accounts:saml-acs",
    "accounts:saml-slo",
    # SCIM takes no session: each request's own token of scope scim (tests/accounts/test_scim.py)
    "scim:users",
    "scim:user",
    "scim:groups",
    "scim:group",
    "scim:resource-types",
    "scim:schemas",
    "scim:service-provider-config",
    "accounts:password-reset-request",
    "accounts:password-reset-confirm",
    "accounts:bootstrap",
    "accounts:invitation",
}
SAMPLE = {
    "int": "1",
    "str": "sample",
    "slug": "sample",
    "uuid": "00000000-0000-0000-0000-000000000001",
    "path": "a/b",
}
_CONVERTER = re.compile(r"<(?:(?P<conv>\w+):)?\w+>")
_GROUP = re.compile(r"\(\?P<\w+>([^()]*)\)")


def _sample_regex(regex: str) -> str:
    def group(match: re.Match[str]) -> str:
        body = match.group(1)
        if "|" in body and not body.startswith("["):
            return body.split("|")[0]
        return "1"

    text = _GROUP.sub(group, regex).lstrip("^").replace("\\Z", "").rstrip("$")
    return text.replace("\\.", ".").replace("\\", "")


def _sample(pattern: object) -> str:
    if isinstance(pattern, RoutePattern):
        return _CONVERTER.sub(
            lambda m: SAMPLE.get(m.group("conv") or "str", "sample"), str(pattern)
        )
    return _sample_regex(str(pattern))


def walk(resolver: URLResolver, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}{entry.namespace}:"
            yield from walk(entry, prefix + _sample(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else entry.lookup_str
            yield "/" + prefix + _sample(entry.pattern), name


ROUTES = sorted(set(walk(get_resolver())))


def test_the_walk_finds_the_routes_we_know_and_the_allow_list_is_exactly_the_public_one() -> None:
    names = {name for _, name in ROUTES}
    assert {"accounts:factors", "accounts-api:tokens", "admin:index", "api-schema"} <= names
    assert set(PUBLIC_ROUTES) == EXPECTED_PUBLIC
    assert len(ROUTES) > 40


def refused(response: object, *, anonymous: bool) -> bool:
    status = response.status_code  # type: ignore[attr-defined]
    if status == 302:
        location = response["Location"]  # type: ignore[index]
        if anonymous:
            return bool(location.startswith("/accounts/sign-in/"))
        return bool(location.startswith(("/accounts/second-factor/", "/accounts/enrol/")))
    return bool(status in ({401} if anonymous else {403}))


def _route_name(path: str, name: str) -> str:
    try:
        return str(resolve(path).view_name)
    except Exception:
        return name


# Public routes are left out of the refusal tests by design (and asserted exactly above).
PROTECTED = [(p, n) for p, n in ROUTES if _route_name(p, n) not in EXPECTED_PUBLIC]
SECOND_FACTOR_PROTECTED = [
    (p, n) for p, n in PROTECTED if _route_name(p, n) not in UNVERIFIED_ROUTES
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name"), PROTECTED, ids=[n for _, n in PROTECTED])
def test_an_anonymous_client_reaches_no_route_but_the_public_ones(path: str, name: str) -> None:
    client = Client()

    for method in ("get", "post"):
        response = getattr(client, method)(path)
        assert refused(response, anonymous=True), (method, path, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "name"), SECOND_FACTOR_PROTECTED, ids=[n for _, n in SECOND_FACTOR_PROTECTED]
)
def test_a_password_only_session_reaches_only_the_second_factor_pages(
    path: str, name: str, user: User
) -> None:
    # a user who has a factor: enrolment pages are closed to them too
    make_totp_device(user)
    client = Client()
    sign_in_client(client, user, verified=False)

    for method in ("get", "post"):
        response = getattr(client, method)(path)
        assert refused(response, anonymous=False), (method, path, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ENROLMENT_ROUTES))
def test_enrolment_routes_open_before_the_second_factor_only_without_any_factor(
    name: str, user: User
) -> None:
    path = next(p for p, n in ROUTES if n == name)
    client = Client()
    sign_in_client(client, user, verified=False)

    response = client.get(path)

    assert not refused(response, anonymous=False)
