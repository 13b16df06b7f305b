"""Figures for the crypto core: message AEAD, HPKE sealing, file streaming.

Usage: python -m benchmarks.crypto_bench [--stream-mib 64] [--piece-kib 64]
Prints microseconds per message round trip (associated data built on both sides), HPKE
seal/open milliseconds, and stream MB/s with the peak-RSS growth while streaming.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from safechat.crypto import (  # noqa: E402 - after the path fix, so the script runs directly
    AdPurpose,
    HpkeInfo,
    HpkePrivateKey,
    KeyPurpose,
    StreamDecryptor,
    StreamEncryptor,
    SymmetricKey,
    associated_data,
    decrypt,
    encrypt,
    hpke_open,
    hpke_seal,
)

MIB = 1024 * 1024


def per_op(operation: Callable[[], object], *, ops: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` seconds per call (the minimum is the least noisy estimate)."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(ops):
            operation()
        timings.append((time.perf_counter() - start) / ops)
    return min(timings)


def peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_messages() -> None:
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    message = b"m" * 200

    def build_ad() -> bytes:
        return associated_data(
            purpose=AdPurpose.MESSAGE, room_id=1234, message_id=987654, epoch=7, sender_id=42
        )

    def round_trip() -> None:
        blob = encrypt(key, message, aad=build_ad())
        decrypt(key, blob, aad=build_ad())

    blob = encrypt(key, message, aad=build_ad())
    ad = build_ad()
    print("AES-256-GCM, 200-byte message")
    print(
        f"  encrypt+decrypt incl. AAD building : {per_op(round_trip, ops=20_000) * 1e6:7.2f} us/op"
    )
    print(f"  associated_data() alone            : {per_op(build_ad, ops=20_000) * 1e6:7.2f} us/op")
    encrypt_cost = per_op(lambda: encrypt(key, message, aad=ad), ops=20_000)
    print(f"  encrypt alone                      : {encrypt_cost * 1e6:7.2f} us/op")
    decrypt_cost = per_op(lambda: decrypt(key, blob, aad=ad), ops=20_000)
    print(f"  decrypt alone                      : {decrypt_cost * 1e6:7.2f} us/op")


def bench_hpke() -> None:
    recipient = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    public = recipient.public_key()
    payload = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH).to_bytes()
    aad = b"room 1234 / epoch 7 / member 42"
    sealed = hpke_seal(public, payload, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad)

    def seal() -> bytes:
        return hpke_seal(public, payload, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad)

    def open_() -> bytes:
        return hpke_open(recipient, sealed, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad)

    keygen = per_op(lambda: HpkePrivateKey.generate(KeyPurpose.USER_HPKE), ops=200)
    print("HPKE ML-KEM-768+X25519 / HKDF-SHA256 / AES-256-GCM, sealing a 38-byte room key")
    print(f"  seal                               : {per_op(seal, ops=500) * 1e3:7.3f} ms/op")
    print(f"  open                               : {per_op(open_, ops=500) * 1e3:7.3f} ms/op")
    print(f"  key pair generation                : {keygen * 1e3:7.3f} ms/op")
    print(f"  sealed size                        : {len(sealed)} bytes")


def bench_stream(stream_mib: int, piece_kib: int) -> None:
    key = SymmetricKey.generate(KeyPurpose.FILE)
    aad = b"room 1234 / file 55 / epoch 7"
    source = bytes(range(256)) * (stream_mib * MIB // 256)
    piece = piece_kib * 1024

    def pieces(data: bytes) -> list[memoryview]:
        view = memoryview(data)
        return [view[offset : offset + piece] for offset in range(0, len(data), piece)]

    plain_pieces = pieces(source)

    # Outputs are dropped as they come, as when streaming to a socket or the object store:
    # keeping 64 MiB of output would measure page faults, not crypto.
    def encrypt_pass() -> int:
        encryptor = StreamEncryptor(key, aad=aad)
        written = sum(len(encryptor.update(p)) for p in plain_pieces)
        return written + len(encryptor.finalize())

    def pipeline_pass() -> int:
        encryptor = StreamEncryptor(key, aad=aad)
        decryptor = StreamDecryptor(key, aad=aad)
        recovered = sum(len(decryptor.update(encryptor.update(p))) for p in plain_pieces)
        recovered += len(decryptor.update(encryptor.finalize()))
        return recovered + len(decryptor.finalize())

    # 1. Peak RSS growth of a full encrypt+decrypt pipeline (source allocated before baseline).
    baseline = peak_rss_bytes()
    if pipeline_pass() != len(source):
        raise SystemExit("stream round trip lost bytes")
    rss_delta = peak_rss_bytes() - baseline

    # 2. Throughput, best of 3.
    encrypt_time = per_op(encrypt_pass, ops=1, repeats=3)
    pipeline_time = per_op(pipeline_pass, ops=1, repeats=3)
    encryptor = StreamEncryptor(key, aad=aad)
    ciphertext = b"".join([*(encryptor.update(p) for p in plain_pieces), encryptor.finalize()])
    cipher_pieces = pieces(ciphertext)

    def decrypt_pass() -> int:
        decryptor = StreamDecryptor(key, aad=aad)
        recovered = sum(len(decryptor.update(p)) for p in cipher_pieces)
        return recovered + len(decryptor.finalize())

    decrypt_time = per_op(decrypt_pass, ops=1, repeats=3)

    # 3. Correctness of what was measured, untimed.
    decryptor = StreamDecryptor(key, aad=aad)
    digest = hashlib.sha256()
    for p in cipher_pieces:
        digest.update(decryptor.update(p))
    digest.update(decryptor.finalize())
    if digest.digest() != hashlib.sha256(source).digest():
        raise SystemExit("stream round trip produced different bytes")

    mb = len(source) / 1e6
    print(f"STREAM AES-256-GCM, {stream_mib} MiB fed in {piece_kib} KiB pieces, 64 KiB chunks")
    print(f"  encrypt                            : {mb / encrypt_time:7.0f} MB/s")
    print(f"  decrypt                            : {mb / decrypt_time:7.0f} MB/s")
    print(f"  encrypt+decrypt pipeline           : {mb / pipeline_time:7.0f} MB/s")
    print(f"  peak RSS growth while streaming    : {rss_delta / MIB:7.2f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stream-mib", type=int, default=64)
    parser.add_argument("--piece-kib", type=int, default=64)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}; best of 5 runs per figure\n")
    bench_messages()
    print()
    bench_hpke()
    print()
    bench_stream(args.stream_mib, args.piece_kib)


if __name__ == "__main__":
    main()
