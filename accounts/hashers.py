"""Password hashing: Argon2id with parameters measured for our servers.

Measured with ``benchmarks/auth_bench.py`` on 2 cores (docs/accounts.md):
46 MiB and 2 passes take about 70 ms per hash on one core, above OWASP's
minimum (19 MiB, t=2) and still leave room for 10 sign-ins per second beside
the WebSocket traffic. One lane: the server parallelises across requests, and
argon2-cffi releases the GIL while it hashes.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class SafeChatArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id, 46 MiB, 2 passes, 1 lane. Raising any of them re-hashes at next sign-in."""

    algorithm = "argon2"  # same encoded format; Django upgrades hashes whose parameters differ
    time_cost = 2
    memory_cost = 47104  # KiB
    parallelism = 1
