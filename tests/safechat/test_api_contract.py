"""The API keeps its contract: schemathesis over every operation of ``/api/schema/``.

A real uvicorn server on this test's database, seeded through the services with people
of every role, rooms, messages, a reaction, two scanned files and a direct conversation,
is tested by ``st run`` (schemathesis' own command, as a developer runs it) once for a
token of each scope: every phase (the schema's examples, the coverage of each
parameter's edges and of undocumented methods, fuzzing, and the stateful phase that
chains operations through the links schemathesis infers from the schema) with every
check (``--checks all``): no 5xx; statuses, content types, headers and bodies as
documented; invalid input refused and valid input accepted; a deleted object gone and a
created one there; credentials never ignored; and one person's objects never served to
another: a peer holding a token of the same scope (bob for ann, oscar for olga) replays
the holder's reads of their own objects. Any failure fails the test, with schemathesis'
report.

Bounded for CI: ``tests/safechat/schemathesis.toml`` fixes the seed and the examples per
operation, about a minute a scope on two cores. schemathesis runs in this test's
temporary folder and keeps nothing (no example database, no cache, no crash files).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from accounts.services import api_token_create
from files.services import file_scan
from rooms.models import Membership
from rooms.services import (
    direct_conversation_create,
    membership_add,
    message_delete,
    message_edit,
    message_post,
    reaction_toggle,
    read_marker_set,
    room_archive,
)
from tests.accounts.factories import grant_role, make_user
from tests.files.helpers import upload
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd
from tests.support.fixtures import (
    PROJECT_ROOT,
    project_env,
    shared_database_url,
    start_server,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("st")
SCOPES = ("read", "write", "admin", "audit")
# Budgets the run would otherwise exhaust within seconds: the contract is checked with
# limits that never refuse, so every generated request reaches the code it tests (the
# limits themselves are tested in tests/rooms and tests/accounts).
UNLIMITED = "1000000/1"
RATE_LIMITS = {
    name: UNLIMITED
    for name in (
        "SAFECHAT_POST_RATE_LIMIT",
        "SAFECHAT_REACTION_RATE_LIMIT",
        "SAFECHAT_READ_MARKER_RATE_LIMIT",
        "SAFECHAT_ROOM_CREATE_RATE_LIMIT",
        "SAFECHAT_MEMBERSHIP_RATE_LIMIT",
        "SAFECHAT_ROOM_SETTINGS_RATE_LIMIT",
        "SAFECHAT_TOKEN_FAILURE_LIMIT",
        "SAFECHAT_API_RATE_LIMIT",
    )
}


@dataclass(frozen=True)
class Holders:
    """Who holds the tokens: ``owner`` is tested, ``peer`` must never see their objects."""

    owner: User
    peer: User


def person(username: str, role: Role | None = None, **fields: str) -> User:
    user = make_user(username=username, **fields)
    return grant_role(user, role) if role is not None else user


def seed() -> dict[str, Holders]:
    """A small bank: people of every role, their rooms, messages, a file; who holds
    which scope's tokens (ann and bob chat, olga and oscar are compliance officers)."""
    ann = person("ann", Role.ROOM_ADMIN, first_name="Ann", last_name="Archer")
    bob = person("bob", Role.ROOM_ADMIN, first_name="Bob", last_name="Brand")
    cara = person("cara", first_name="Cara", last_name="Cole")
    dan = person("dan")
    rita = person("rita")
    olga = person("olga", Role.COMPLIANCE_OFFICER)
    oscar = person("oscar", Role.COMPLIANCE_OFFICER)
    person("sam", Role.SECURITY_ADMIN)

    rates = make_room(owner=ann, name="Rates desk", history_visible=True)
    membership_add(actor=ann, room=rates, user=cara)
    membership_add(actor=ann, room=rates, user=rita, role=Membership.Role.READ_ONLY)
    membership_add(actor=ann, room=rates, user=dan, role=Membership.Role.MODERATOR)
    first = message_post(sender=ann, room=rates, text="Morning: EUR 5y at 2.41")
    reply = message_post(sender=cara, room=rates, text="@ann filled 5m", parent_id=first.pk)
    reaction_toggle(actor=ann, message=reply, emoji="👍")
    edited = message_post(sender=ann, room=rates, text="Closing at 2.34")
    message_edit(actor=ann, message=edited, text="Closing at 2.43")
    message_delete(actor=ann, message=message_post(sender=ann, room=rates, text="wrong room"))
    read_marker_set(actor=ann, room=rates, message_id=reply.pk)
    for name, data in (("curve.csv", b"EUR,5y,2.41\n" * 64), ("chart.png", png())):
        file_scan(file_id=upload(actor=ann, room=rates, data=data, name=name).pk)

    credit = make_room(owner=bob, name="Credit desk")
    membership_add(actor=bob, room=credit, user=ann)
    message_post(sender=bob, room=credit, text="CDX rolls today")
    theirs = make_room(owner=bob, name="Bob's book", members=(cara,))
    message_post(sender=bob, room=theirs, text="only for this room")
    archived = make_room(owner=ann, name="Old desk", members=(cara,))
    message_post(sender=cara, room=archived, text="last words")
    room_archive(actor=ann, room=archived)
    direct = direct_conversation_create(actor=ann, participants=[cara])
    message_post(sender=cara, room=direct, text="lunch?")
    make_room(owner=bob, name="Bob's own", members=(dan,))

    chat = Holders(owner=ann, peer=bob)
    return {"read": chat, "write": chat, "admin": chat, "audit": Holders(olga, oscar)}


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@contextmanager
def contract_server(tmp_path: Path, master_key_file: Path) -> Iterator[str]:
    """The server under test, on this test's database, keys and vault; always stopped."""
    env = project_env(
        tmp_path,
        DATABASE_URL=shared_database_url(),
        SAFECHAT_MASTER_KEY_FILE=str(master_key_file),
        SAFECHAT_AUDIT_SIGNING_KEY_FILE=str(settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE),
        SAFECHAT_AUDIT_ANCHOR_FILE=str(settings.SAFECHAT_AUDIT_ANCHOR_FILE),
        SAFECHAT_VAULT_STORAGE_OPTIONS=json.dumps(settings.STORAGES["vault"]["OPTIONS"]),
        LOG_LEVEL="WARNING",
        **RATE_LIMITS,
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = str(settings.REDIS_URL)
    port = free_port()
    process = start_server(env, port, log=tmp_path / "server.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Identity:
    """A token the run authenticates with: its holder's name in the run, id and secret."""

    name: str
    token_id: int
    secret: str


def identity(name: str, user: User, scope: str) -> Identity:
    created, secret = api_token_create(actor=user, name=f"contract {scope}", scope=scope)
    return Identity(name, created.pk, secret)


def schemathesis(
    base_url: str, owner: Identity, peer: Identity, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """``st run`` in ``workdir`` over the schema ``/api/schema/`` serves, as ``owner``;
    ``peer`` replays the owner's reads of their own objects (``object_level_authorization``).

    The identities are a Web Fuzzing Commons document in ``workdir``, named in a copy of
    the configuration there: the checkout's file names no path of a machine.
    """
    workdir.mkdir()
    # The schema as the server serves it (it needs a token too), read once.
    request = urllib.request.Request(
        f"{base_url}/api/schema/",
        headers={"Authorization": f"Bearer {owner.secret}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        (workdir / "schema.json").write_bytes(answer.read())
    users = [
        {
            "name": who.name,
            "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {who.secret}"}],
        }
        for who in (owner, peer)
    ]
    (workdir / "auth.json").write_text(json.dumps({"auth": users}))
    config = workdir / "schemathesis.toml"
    config.write_text(
        CONFIG.read_text()
        + "\n[auth.wfc]\n"
        + f"path = {json.dumps(str(workdir / 'auth.json'))}\n"
        + f"user = {json.dumps(owner.name)}\n"
        + f"peers = {json.dumps([owner.name, peer.name])}\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCHEMATHESIS")}
    # The hooks module is imported from the checkout; Hypothesis keeps its files here.
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(workdir / "hypothesis")
    env["SAFECHAT_CONTRACT_TOKEN_ID"] = str(owner.token_id)
    return subprocess.run(
        [
            str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
            "run", str(workdir / "schema.json"), "--url", base_url,
            "--checks", "all",
            "--report", "junit", "--report-dir", str(workdir / "report"),
        ],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture
def vault(settings: Settings, tmp_path: Path, shared_clamd: OwnClamd) -> Path:
    """The test's and the server's vault: a folder of this test's own; files shared
    while seeding are scanned (clean) by the tests' clamd."""
    settings.SAFECHAT_CLAMD_SOCKET = shared_clamd.socket_path
    settings.SAFECHAT_CLAMD_HOST = ""
    folder = tmp_path / "vault"
    settings.STORAGES = {
        **settings.STORAGES,
        "vault": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder), "base_url": None},
        },
    }
    return folder


@pytest.mark.parametrize("scope", SCOPES)
def test_every_operation_keeps_the_contract_for_a_token_of_each_scope(
    scope: str, tmp_path: Path, master_key_file: Path, vault: Path
) -> None:
    # Given a seeded bank, and tokens of the scope for the holder and a peer
    holders = seed()[scope]
    owner = identity("owner", holders.owner, scope)
    peer = identity("peer", holders.peer, scope)

    # When schemathesis runs every phase and every check over the whole schema
    started = time.monotonic()
    with contract_server(tmp_path, master_key_file) as base_url:
        result = schemathesis(base_url, owner, peer, tmp_path / "schemathesis")
    took = time.monotonic() - started

    # Then nothing failed
    report = result.stdout + result.stderr
    (tmp_path / "schemathesis.log").write_text(report)
    assert result.returncode == 0, f"{report}\n(the server's log: {tmp_path / 'server.log'})"
    print(f"{scope}: {took:.1f} s\n{report[-3000:]}")


def test_the_tus_offset_query_is_an_operation_of_the_schema() -> None:
    # given the schema the server serves (drf-spectacular, with the project's generator)
    from drf_spectacular.settings import spectacular_settings

    schema = spectacular_settings.DEFAULT_GENERATOR_CLASS().get_schema(request=None, public=True)

    # then HEAD /api/v1/uploads/{upload_id} is documented, with its answers and no bodies
    head = schema["paths"]["/api/v1/uploads/{upload_id}"]["head"]
    assert head["operationId"] == "uploads_head"
    assert {"200", "401", "404", "410"} <= set(head["responses"])
    assert not [code for code, answer in head["responses"].items() if "content" in answer]
    # and Django's HEAD-as-GET is no operation of its own
    assert "head" not in schema["paths"]["/api/v1/rooms/"]


def test_the_schema_names_the_session_cookie_as_the_deployment_sets_it(
    settings: Settings,
) -> None:
    from drf_spectacular.settings import spectacular_settings

    # given the production cookie names
    settings.SESSION_COOKIE_NAME = "__Host-sessionid"

    schema = spectacular_settings.DEFAULT_GENERATOR_CLASS().get_schema(request=None, public=True)

    cookie = schema["components"]["securitySchemes"]["cookieAuth"]
    assert (cookie["in"], cookie["name"]) == ("cookie", "__Host-sessionid")
    assert "__Host-csrftoken" in cookie["description"]
    assert "X-CSRFToken" in cookie["description"]
