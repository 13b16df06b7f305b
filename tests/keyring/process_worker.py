"""A second SafeChat process for the master-key tests: serves posts and reads, or rotates.

    python -m tests.keyring.process_worker serve <database name> <room id> <user ids> <stop file>
    python -m tests.keyring.process_worker rotate <database name>

Run by ``test_master_key_processes.py`` against the test's own database (its name is
given, as the test runner's database differs from the configured one).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def _setup(database_name: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = database_name
    import django

    django.setup()


def serve(room_id: int, user_ids: list[int], stop_file: Path) -> int:
    """Post and read everything as every user, until told to stop; report what failed."""
    from accounts.models import User
    from rooms.models import Message, Room
    from rooms.services import message_post
    from safechat.keyring.services import message_decrypt

    users = list(User.objects.filter(pk__in=user_ids).order_by("pk"))
    room = Room.objects.get(pk=room_id)
    posts = reads = rounds = 0
    errors: list[str] = []
    while not stop_file.exists():
        sender = users[rounds % len(users)]
        try:
            message_post(sender=sender, room=room, text=f"round {rounds}")
            posts += 1
        except Exception as exc:
            errors.append(f"post: {type(exc).__name__}: {exc}")
        for message in Message.objects.filter(room=room).order_by("pk"):
            for user in users:
                try:
                    text = message_decrypt(
                        reader_id=user.pk,
                        room_id=room.pk,
                        message_uid=message.uid,
                        epoch=message.epoch,
                        sender_id=message.sender_id,
                        ciphertext=bytes(message.ciphertext),
                    )
                    if not text:
                        errors.append(f"read {message.pk}: empty")
                    reads += 1
                except Exception as exc:
                    errors.append(f"read {message.pk}: {type(exc).__name__}: {exc}")
        rounds += 1
        print(json.dumps({"round": rounds}), flush=True)
        time.sleep(0.05)
    print(json.dumps({"posts": posts, "reads": reads, "errors": errors[:20]}), flush=True)
    return 0


def rotate() -> int:
    from django.core.management import call_command

    call_command("rotate_master_key", "--new-version", "--batch-size", "1")
    return 0


def main(argv: list[str]) -> int:
    role, database_name = argv[1], argv[2]
    _setup(database_name)
    try:
        if role == "serve":
            user_ids = [int(pk) for pk in argv[4].split(",")]
            return serve(int(argv[3]), user_ids, Path(argv[5]))
        if role == "rotate":
            return rotate()
    except Exception:
        traceback.print_exc()
        return 1
    print(f"unknown role {role}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
