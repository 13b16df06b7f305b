"""Verify an eDiscovery archive offline: ``python -m audit.verify_ediscovery ARCHIVE
--public-key FILE``.

``ARCHIVE`` is the decrypted archive (a tar, ``audit.ediscovery_format``); ``FILE`` holds
the audit public key (base64 or hex of its 32 bytes, as ``manage.py audit_public_key``
prints it), or is that key itself. Needs only Python and ``cryptography``: copy
``audit/__init__.py``, ``chain.py``, ``ediscovery_format.py`` and this file.
Exit status: 0 when every item and the signature verify, 1 when anything does not,
2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from audit.chain import public_key_parse
from audit.ediscovery_format import archive_verify


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify_ediscovery",
        description="Verify a SafeChat eDiscovery archive against its signed manifest.",
    )
    parser.add_argument("archive", type=Path, help="the decrypted archive (.tar)")
    parser.add_argument(
        "--public-key", required=True, help="the audit public key, or a file holding it"
    )
    args = parser.parse_args(argv)
    text = args.public_key
    candidate = Path(text)
    try:
        if len(text) < 1000 and candidate.is_file():
            text = candidate.read_text(encoding="ascii")
        key = public_key_parse(text)
    except (ValueError, OSError) as exc:
        print(f"error: --public-key: {exc}", file=sys.stderr)
        return 2
    if not args.archive.is_file():
        print(f"error: {args.archive} is not a file", file=sys.stderr)
        return 2
    verdict = archive_verify(args.archive, key)
    print(verdict.message)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
