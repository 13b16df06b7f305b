"""A randomised concurrency test: workers run random room operations at once, then the
invariants of the whole system are checked.

Seeded and reproducible in the operations each worker chooses (the interleaving is
the operating system's): ``SAFECHAT_CONCURRENCY_SEED`` picks the seed and
``SAFECHAT_CONCURRENCY_SECONDS`` how long the workers run (30 s by default).
"""

from __future__ import annotations

import os
import random  # noqa: TID251 - reproducible choice of test operations, nothing secret
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import connections
from django.http import Http404

from accounts.models import User
from accounts.roles import Role
from audit import chain
from audit.selectors import audit_event_rows
from rooms import selectors
from rooms.errors import RateLimitedError
from rooms.models import InformationBarrier, Membership, Message, Room
from rooms.services import (
    barrier_create,
    barrier_delete,
    membership_add,
    membership_remove,
    membership_role_change,
    message_edit,
    message_post,
    reaction_toggle,
    room_barrier_violations,
    room_key_rotate,
)
from rooms.services.barriers import user_groups_change
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from tests.accounts.factories import grant_role, make_user
from tests.rooms.concurrency import postgresql_only
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db(transaction=True)

SEED = int(os.environ.get("SAFECHAT_CONCURRENCY_SEED", "1107"))
SECONDS = float(os.environ.get("SAFECHAT_CONCURRENCY_SECONDS", "30"))
WORKERS = 4
EXPECTED = (
    PermissionDenied,  # also a barrier's refusal
    ValidationError,
    Http404,
    ObjectDoesNotExist,
    RateLimitedError,
)
ROLES = [Membership.Role.MEMBER, Membership.Role.MODERATOR, Membership.Role.READ_ONLY]


@dataclass
class World:
    admin: User
    owners: list[User]  # never in a walled group: they stay removable-free owners
    staff: list[User]  # their groups change; never owners
    research: Group
    trading: Group
    rooms: list[Room]
    unexpected: list[str] = field(default_factory=list)
    succeeded: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _build() -> World:
    admin = grant_role(make_user(username="secadmin"), Role.SECURITY_ADMIN)
    admin = User.objects.get(pk=admin.pk)
    owners = [make_room_admin(username=f"owner{i}") for i in range(2)]
    staff = [make_user(username=f"staff{i}") for i in range(6)]
    research = Group.objects.create(name="research")
    trading = Group.objects.create(name="trading")
    for person in staff[:2]:
        person.groups.add(research)
    for person in staff[2:4]:
        person.groups.add(trading)
    barrier_create(actor=admin, group_a=research, group_b=trading, reason="MAR")
    rooms = [
        make_room(owner=owners[0], members=(staff[0], staff[4]), name="r0"),
        make_room(owner=owners[0], members=(staff[2], staff[5]), name="r1"),
        make_room(owner=owners[0], members=(staff[1],), name="r2"),
        make_room(owner=owners[1], members=(staff[3], staff[4]), name="r3"),
    ]
    membership_add(actor=owners[0], room=rooms[2], user=owners[1], role=Membership.Role.OWNER)
    return World(admin, owners, staff, research, trading, rooms)


def _resolve(world: World, room_ids: Iterable[int], *, leaving: int | None = None) -> None:
    """Resolve violations as a security admin would: in each room, read its violations
    as they are now and remove one of each pair (``leaving`` if given, whose groups just
    changed), until none is left. Read again each time: what was reported may have been
    resolved meanwhile by another worker (a removal, a barrier lifted), and a removal it
    no longer justifies is refused; the rest of the room is still resolved.
    """
    for room_id in room_ids:
        for _attempt in range(20):
            pairs = room_barrier_violations(room_ids=[room_id]).get(room_id, [])
            if not pairs:
                break
            pair = pairs[0]
            who = leaving if leaving in (pair.user_a, pair.user_b) else pair.user_a
            try:
                membership_remove(
                    actor=world.admin,
                    room=Room.objects.get(pk=room_id),
                    member=User.objects.get(pk=who),
                )
            except EXPECTED:
                continue


def _operations(world: World, rng: random.Random) -> list[Callable[[], object]]:
    def person() -> User:
        return User.objects.get(pk=rng.choice(world.owners + world.staff).pk)

    def owner() -> User:
        return User.objects.get(pk=rng.choice(world.owners).pk)

    def staff() -> User:
        return User.objects.get(pk=rng.choice(world.staff).pk)

    def room() -> Room:
        return Room.objects.get(pk=rng.choice(world.rooms).pk)

    def message_in(chosen: Room) -> Message:
        ids = list(Message.objects.filter(room=chosen).values_list("pk", flat=True)[:50])
        if not ids:
            raise Message.DoesNotExist
        return Message.objects.select_related("room").get(pk=rng.choice(ids))

    def add() -> object:
        who = person()
        role = (
            Membership.Role.OWNER if who.pk in {o.pk for o in world.owners} else rng.choice(ROLES)
        )
        return membership_add(actor=owner(), room=room(), user=who, role=role)[0]

    def remove() -> object:
        actor = rng.choice([owner(), world.admin])
        membership_remove(actor=actor, room=room(), member=staff())
        return None

    def change_role() -> object:
        who = person()
        is_owner_pool = who.pk in {o.pk for o in world.owners}
        role = (
            rng.choice([Membership.Role.OWNER, Membership.Role.MODERATOR])
            if is_owner_pool
            else rng.choice(ROLES)
        )
        return membership_role_change(actor=owner(), room=room(), member=who, role=role)

    def create_barrier() -> object:
        _barrier, violations = barrier_create(
            actor=world.admin, group_a=world.research, group_b=world.trading
        )
        _resolve(world, violations)
        return violations

    def delete_barrier() -> object:
        barrier = InformationBarrier.objects.first()
        if barrier is not None:
            barrier_delete(actor=world.admin, barrier=barrier)
        return barrier

    def change_groups() -> object:
        who = staff()
        group = rng.choice([world.research, world.trading])
        if rng.random() < 0.5:
            violations = user_groups_change(actor=world.admin, user=who, add=[group])
            # the person whose groups changed leaves the rooms they now violate
            _resolve(world, violations, leaving=who.pk)
            return violations
        return user_groups_change(actor=world.admin, user=who, remove=[group])

    def post() -> object:
        key = f"k{rng.randrange(20)}" if rng.random() < 0.3 else None
        return message_post(sender=person(), room=room(), text="hello", client_key=key)

    def edit() -> object:
        message = message_in(room())
        return message_edit(actor=message.sender, message=message, text=f"v{rng.randrange(99)}")

    def react() -> object:
        return reaction_toggle(actor=person(), message=message_in(room()), emoji="👍")

    def rotate() -> object:
        return room_key_rotate(actor=owner(), room=room())

    weighted: list[tuple[Callable[[], object], int]] = [
        (add, 4), (remove, 3), (change_role, 2), (create_barrier, 1), (delete_barrier, 1),
        (change_groups, 2), (post, 6), (edit, 3), (react, 3), (rotate, 1),
    ]  # fmt: skip
    return [op for op, weight in weighted for _ in range(weight)]


def _worker(world: World, number: int, start: threading.Barrier, deadline: float) -> None:
    rng = random.Random(SEED * 100 + number)  # noqa: S311 - choosing test operations
    operations = _operations(world, rng)
    try:
        start.wait(timeout=30)
        while time.monotonic() < deadline:
            operation = rng.choice(operations)
            try:
                operation()
            except EXPECTED:
                continue
            except Exception:
                with world.lock:
                    world.unexpected.append(f"{operation.__name__}: {traceback.format_exc()}")
                continue
            with world.lock:
                world.succeeded[operation.__name__] = world.succeeded.get(operation.__name__, 0) + 1
    finally:
        connections.close_all()


def _check_invariants(world: World) -> None:
    # no room violates a barrier
    assert room_barrier_violations() == {}
    for room in Room.objects.all():
        members = set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        # every room has an owner
        assert Membership.objects.filter(room=room, role=Membership.Role.OWNER).exists(), room
        # nobody but a member holds a key copy of the room
        holders = set(
            SealedEpochKey.objects.filter(epoch__room=room, user__isnull=False).values_list(
                "user_id", flat=True
            )
        )
        assert holders <= members, (room, holders - members)
        # every member holds the current epoch (unless they joined a room hiding history
        # after content under it: then the next post starts an epoch they hold), and reads
        # every message of an epoch they hold
        current = RoomEpoch.objects.filter(room=room, shredded_at__isnull=True).latest("number")
        for membership in Membership.objects.filter(room=room).select_related("user"):
            user = membership.user
            held = set(
                SealedEpochKey.objects.filter(epoch__room=room, user=user).values_list(
                    "epoch__number", flat=True
                )
            )
            joined_after_content = (
                room.rekey_reason != ""
                and not room.history_visible
                and Message.objects.filter(room=room, epoch=current.number).exists()
                and membership.visible_from_seq > 0
            )
            assert current.number in held or joined_after_content, (room, user)
            # and nobody holds the key of a message posted before they joined a room hiding
            # history (an edit made since is new content under the current epoch: the access
            # rule alone keeps it from them, docs/rooms.md "History and joining")
            assert not Message.objects.filter(
                room=room, epoch__in=held, seq__lte=membership.visible_from_seq, revision=0
            ).exists(), (room, user)
            for message in Message.objects.filter(room=room, epoch__in=held).select_related(
                "sender"
            ):
                assert selectors.message_view(reader=user, message=message).text is not None
    # the audit chain is intact
    report = chain.chain_verify(audit_event_rows())
    assert report.intact, report.problem


@postgresql_only("many writers at once, with row locks and the audit chain's lock")
def test_random_operations_at_once_keep_every_invariant(settings: Any) -> None:
    # given rooms, owners, people on both sides of a barrier, and generous rate limits
    settings.SAFECHAT_POST_RATE_LIMIT = (100_000, 1)
    settings.SAFECHAT_REACTION_RATE_LIMIT = (100_000, 1)
    settings.SAFECHAT_MEMBERSHIP_RATE_LIMIT = (100_000, 1)
    settings.SAFECHAT_ROOM_SETTINGS_RATE_LIMIT = (100_000, 1)
    settings.SAFECHAT_ROOM_CREATE_RATE_LIMIT = (100_000, 1)
    world = _build()
    start = threading.Barrier(WORKERS)
    deadline = time.monotonic() + SECONDS

    # when several workers run random operations at once for a bounded time
    threads = [
        threading.Thread(target=_worker, args=(world, number, start, deadline + 1))
        for number in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)

    # then no operation failed unexpectedly (no deadlock, no integrity error, no 500)
    assert not any(t.is_alive() for t in threads), "a worker is stuck (a deadlock?)"
    assert not world.unexpected, f"seed {SEED}:\n" + "\n".join(world.unexpected[:5])
    # and the operations did happen (not all refused), and every invariant holds
    print(f"seed {SEED}, {SECONDS:.0f} s, succeeded: {sorted(world.succeeded.items())}")
    assert {"add", "remove", "post", "edit", "react", "change_groups"} <= set(world.succeeded)
    _check_invariants(world)
