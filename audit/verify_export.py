"""Verify a SafeChat audit export offline: ``python -m audit.verify_export FILE --public-key KEY``.

Needs only Python and ``cryptography`` (no Django, no database): copy ``audit/``'s
``__init__.py``, ``chain.py``, ``exportfile.py``, ``verify_cli.py`` and this file to the
checking machine.
``KEY`` is the base64 (or hex) public key printed by ``manage.py audit_public_key``,
or a file holding it; repeat ``--public-key`` to trust retired keys too.
Exit status: 0 verified, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from audit.exportfile import export_verify
from audit.verify_cli import verify_main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verifier on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return verify_main(
        argv,
        prog="python -m audit.verify_export",
        description="Verify a SafeChat audit export.",
        subject="file",
        subject_help="the .jsonl export",
        key_help="audit public key (base64 or hex of 32 bytes, or a file holding it)",
        several_keys=True,
        verify=export_verify,
    )


if __name__ == "__main__":
    sys.exit(main())
