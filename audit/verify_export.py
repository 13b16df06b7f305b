"""Verify a SafeChat audit export offline: ``python -m audit.verify_export FILE --public-key KEY``.

Needs only Python and ``cryptography`` (no Django, no database): copy ``audit/``'s
``__init__.py``, ``chain.py``, ``exportfile.py`` and this file to the checking machine.
``KEY`` is the base64 (or hex) public key printed by ``manage.py audit_public_key``,
or a file holding it; repeat ``--public-key`` to trust retired keys too.
Exit status: 0 verified, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import public_key_parse
from audit.exportfile import export_verify


def _public_key(value: str) -> Ed25519PublicKey:
    candidate = Path(value)
    text = value
    if len(value) < 200 and candidate.is_file():
        text = candidate.read_text(encoding="ascii")
    return public_key_parse(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify_export", description="Verify a SafeChat audit export."
    )
    parser.add_argument("file", type=Path, help="the .jsonl export")
    parser.add_argument(
        "--public-key",
        action="append",
        required=True,
        help="audit public key (base64 or hex of 32 bytes, or a file holding it)",
    )
    args = parser.parse_args(argv)
    try:
        keys = [_public_key(value) for value in args.public_key]
    except (ValueError, OSError) as exc:
        print(f"error: --public-key: {exc}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 2
    result = export_verify(args.file, keys)
    print(result.message)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
