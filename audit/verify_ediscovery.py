"""Verify an eDiscovery archive offline: ``python -m audit.verify_ediscovery ARCHIVE
--public-key FILE``.

``ARCHIVE`` is the decrypted archive (a tar, ``audit.ediscovery_format``); ``FILE`` holds
the audit public key (base64 or hex of its 32 bytes, as ``manage.py audit_public_key``
prints it), or is that key itself. Needs only Python and ``cryptography``: copy
``audit/__init__.py``, ``chain.py``, ``ediscovery_format.py``, ``verify_cli.py`` and
this file.
Exit status: 0 when every item and the signature verify, 1 when anything does not,
2 on a usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from audit.ediscovery_format import archive_verify
from audit.verify_cli import verify_main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verifier on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return verify_main(
        argv,
        prog="python -m audit.verify_ediscovery",
        description="Verify a SafeChat eDiscovery archive against its signed manifest.",
        subject="archive",
        subject_help="the decrypted archive (.tar)",
        key_help="the audit public key, or a file holding it",
        several_keys=False,
        verify=lambda path, keys: archive_verify(path, keys[0]),
    )


if __name__ == "__main__":
    sys.exit(main())
