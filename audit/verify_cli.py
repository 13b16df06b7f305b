"""The command line shared by the offline verifiers (``audit.verify_export``,
``audit.verify_ediscovery``).

No Django, no database: needs only Python and ``cryptography`` (with ``audit/chain.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import public_key_parse

# A value at least this long is taken as the key itself, never as a file name.
_PATH_MAX_CHARS = 1000


class Outcome(Protocol):
    """What a verifier returns: whether everything verified, and one line saying so."""

    @property
    def ok(self) -> bool: ...

    @property
    def message(self) -> str: ...


def public_key_load(value: str) -> Ed25519PublicKey:
    """The Ed25519 public key ``value`` names: a file holding it, or the key itself.

    Either way the key is base64 (or hex) of its 32 raw bytes. Raises ``ValueError``
    when it is neither, ``OSError`` when the file cannot be read.
    """
    candidate = Path(value)
    text = value
    if len(value) < _PATH_MAX_CHARS and candidate.is_file():
        text = candidate.read_text(encoding="ascii")
    return public_key_parse(text)


def verify_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    subject: str,
    subject_help: str,
    key_help: str,
    several_keys: bool,
    verify: Callable[[Path, list[Ed25519PublicKey]], Outcome],
) -> int:
    """Parse ``SUBJECT --public-key KEY``, run ``verify`` and print its message.

    ``several_keys`` lets ``--public-key`` repeat (each key trusted); otherwise the last
    one given counts. Returns the exit status: 0 when ``verify`` says ok, 1 when not, 2 on
    a usage error (an unreadable or malformed key, a subject that is not a file; the
    reason goes to stderr). Raises ``SystemExit`` (status 2) on malformed arguments.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("subject", metavar=subject, type=Path, help=subject_help)
    parser.add_argument(
        "--public-key",
        action="append" if several_keys else "store",
        required=True,
        help=key_help,
    )
    args = parser.parse_args(argv)
    values = args.public_key if several_keys else [args.public_key]
    try:
        keys = [public_key_load(value) for value in values]
    except (ValueError, OSError) as exc:
        print(f"error: --public-key: {exc}", file=sys.stderr)
        return 2
    if not args.subject.is_file():
        print(f"error: {args.subject} is not a file", file=sys.stderr)
        return 2
    outcome = verify(args.subject, keys)
    print(outcome.message)
    return 0 if outcome.ok else 1
