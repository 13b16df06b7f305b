"""Key-management figures on a real database.

Usage (PostgreSQL, as the figures in the docs were taken):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat_bench \
        .venv/bin/python -m benchmarks.keyring_bench [--users 10000] [--members 1000]

Creates and drops its own test database. Prints:
  * encrypt + decrypt of a 200-byte message, key from the in-process cache (us/op)
  * decrypting a page of 100 messages spread over 5 epochs, warm and cold cache (ms)
  * a new epoch for a room of N members (s)
  * master-key rotation re-wrapping the private keys of N users (s)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=1_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="safechat-bench-"))
    os.environ["SAFECHAT_DATA_DIR"] = str(workdir)
    os.environ["SAFECHAT_MASTER_KEY_FILE"] = str(workdir / "master-keys.json")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["SAFECHAT_MEMBERS_CAN_CREATE_ROOMS"] = "1"
    os.environ["SAFECHAT_POST_RATE_LIMIT"] = "1000000/1"
    import django

    django.setup()
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        run(args.users, args.members)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(user_count: int, member_count: int) -> None:
    from django.db import connection

    from accounts.models import User
    from rooms.models import Membership, Message
    from rooms.services import message_post, room_create, room_key_rotate
    from rooms.services.epochs import room_epoch_start
    from safechat.crypto import HpkePrivateKey, KeyPurpose, SymmetricKey, decrypt, encrypt
    from safechat.crypto.providers import key_file_add_version
    from safechat.keyring.integrity import user_public_key_mac
    from safechat.keyring.models import UserKeyPair
    from safechat.keyring.provider import get_provider, reset_provider
    from safechat.keyring.rotation import master_key_rotate
    from safechat.keyring.services import (
        clear_key_caches,
        message_aad,
        message_decrypt,
        room_epoch_key_for,
        user_private_key_aad,
    )

    print(f"database: {connection.vendor}")

    # --- 1. one message, key from the cache -----------------------------------------------
    owner = User.objects.create(username="bench-owner")
    room = room_create(actor=owner, name="bench")
    epoch = 1
    room_epoch_key_for(room_id=room.pk, number=epoch, user_id=owner.pk)  # warm the cache
    import uuid

    uid = uuid.uuid4()
    text = "x" * 200
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        key = room_epoch_key_for(room_id=room.pk, number=epoch, user_id=owner.pk)
        aad = message_aad(room_id=room.pk, message_uid=uid, epoch=epoch, sender_id=owner.pk)
        blob = encrypt(key, text.encode(), aad=aad)
        decrypt(key, blob, aad=aad)
    per_op = (time.perf_counter() - start) / n * 1e6
    print(f"encrypt+decrypt 200 B message incl. cached key lookup: {per_op:.1f} us/op")
    raw_key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    start = time.perf_counter()
    for _ in range(n):
        blob = encrypt(raw_key, text.encode(), aad=b"ad")
        decrypt(raw_key, blob, aad=b"ad")
    baseline = (time.perf_counter() - start) / n * 1e6
    print(f"  (baseline, AES-GCM alone with fixed AAD: {baseline:.1f} us/op)")

    # --- 2. a page of 100 messages over 5 epochs -------------------------------------------
    for i in range(100):
        if i and i % 20 == 0:
            room_key_rotate(actor=owner, room=room)
        message_post(sender=owner, room=room, text=f"message {i} " + "y" * 180)
    page = list(Message.objects.filter(room=room).order_by("-id")[:100])
    epochs = {m.epoch for m in page}

    def decrypt_page() -> float:
        start = time.perf_counter()
        for m in page:
            message_decrypt(
                reader_id=owner.pk,
                room_id=room.pk,
                message_uid=m.uid,
                epoch=m.epoch,
                sender_id=m.sender_id,
                ciphertext=bytes(m.ciphertext),
            )
        return (time.perf_counter() - start) * 1000

    clear_key_caches()
    cold = decrypt_page()
    warm = min(decrypt_page() for _ in range(5))
    print(
        f"page of 100 messages from {len(epochs)} epochs: {warm:.2f} ms warm cache, "
        f"{cold:.2f} ms cold (unwrap + {len(epochs)} HPKE opens)"
    )

    # --- 3. a new epoch for a room of N members --------------------------------------------
    provider = get_provider()
    users = User.objects.bulk_create(
        [User(username=f"bench-{i}") for i in range(max(user_count, member_count))]
    )
    keypairs = []
    for user in users:
        private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
        wrapped = provider.wrap(private.to_bytes(), aad=user_private_key_aad(user.pk))
        keypairs.append(
            UserKeyPair(
                user=user,
                public_key=private.public_key().to_bytes(),
                wrapped_private_key=wrapped.to_bytes(),
                kek_version=wrapped.version,
                mac=user_public_key_mac(user.pk, private.public_key().to_bytes()),
            )
        )
    UserKeyPair.objects.bulk_create(keypairs, batch_size=1000)
    big = room_create(actor=owner, name="big")
    Membership.objects.bulk_create(
        [Membership(room=big, user=u) for u in users[:member_count]], batch_size=1000
    )
    start = time.perf_counter()
    room_epoch_start(room=big, reason="on-demand")
    print(
        f"new epoch for a room of {member_count + 1} members: {time.perf_counter() - start:.3f} s"
    )

    # --- 4. master-key rotation -----------------------------------------------------------
    key_file_add_version(os.environ["SAFECHAT_MASTER_KEY_FILE"])
    reset_provider()
    total = UserKeyPair.objects.count()
    start = time.perf_counter()
    status = master_key_rotate(batch_size=500)
    elapsed = time.perf_counter() - start
    print(
        f"master-key rotation of {total} user keys (+ compliance): {elapsed:.2f} s "
        f"({total / elapsed:.0f} keys/s), remaining {status.remaining}"
    )


if __name__ == "__main__":
    main()
