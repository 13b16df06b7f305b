"""The recipient's side of an eDiscovery archive, offline (no Django, no database):

* ``python -m compliance.ediscovery.recipient keygen PRIVATE_FILE`` makes an HPKE key pair
  (ML-KEM-768 + X25519), writes the private key (base64) to ``PRIVATE_FILE`` (mode 0600,
  never overwritten) and prints the public key to give with the export request;
* ``python -m compliance.ediscovery.recipient decrypt ARCHIVE --private-key FILE --export
  ID --out TAR`` opens the downloaded archive; then ``python -m audit.verify_ediscovery
  TAR --public-key AUDIT_KEY`` checks it.

Exit status: 0 done, 1 the archive does not open (not sealed to this key for this export,
altered or truncated: nothing is left at ``--out``), 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from compliance.ediscovery.envelope import archive_decrypt
from safechat.crypto import CryptoError, HpkePrivateKey, KeyPurpose


def _keygen(path: Path) -> int:
    private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"error: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(private.to_bytes()).decode("ascii") + "\n")
    print(base64.b64encode(private.public_key().to_bytes()).decode("ascii"))
    return 0


def _decrypt(archive: Path, key_file: Path, export_id: int, out: Path) -> int:
    try:
        raw = base64.b64decode(key_file.read_text(encoding="ascii").strip(), validate=True)
        private = HpkePrivateKey.from_bytes(raw, purpose=KeyPurpose.USER_HPKE)
        data = archive.read_bytes()
    except (OSError, ValueError, binascii.Error, CryptoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("xb") as handle:
            for piece in archive_decrypt(data, private=private, export_id=export_id):
                handle.write(piece)
    except CryptoError as exc:
        partial.unlink(missing_ok=True)
        print(f"invalid: the archive does not open ({type(exc).__name__})")
        return 1
    except OSError as exc:
        print(f"error: {out}: {exc.strerror}", file=sys.stderr)
        return 2
    partial.replace(out)
    print(f"opened: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance.ediscovery.recipient")
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="make a recipient key pair")
    keygen.add_argument("private_file", type=Path)
    decrypt = commands.add_parser("decrypt", help="open a downloaded archive")
    decrypt.add_argument("archive", type=Path)
    decrypt.add_argument("--private-key", type=Path, required=True)
    decrypt.add_argument("--export", type=int, required=True, help="the export's number")
    decrypt.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "keygen":
        return _keygen(args.private_file)
    return _decrypt(args.archive, args.private_key, args.export, args.out)


if __name__ == "__main__":
    sys.exit(main())
