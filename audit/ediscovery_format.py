"""The eDiscovery archive's format, shared by its writer and its offline verifier.

No Django, no database: the verifier (``python -m audit.verify_ediscovery``) needs only
this module, ``audit/chain.py`` and ``cryptography``.

An archive is a POSIX (ustar/pax) tar holding, in this order:

* ``records/NNNNNN.jsonl``: one JSON object per line, one per event (a message's text at
  each revision, a deletion, a purge tombstone, a membership change, a reaction, a file);
* ``messages/<message id>.eml``: one RFC 5322 message per chat message (threading headers
  for replies, the shared file as a MIME part);
* ``manifest.json``: the export's identity and scope, and for every item above its path,
  size and SHA-256 (canonical JSON: sorted keys, no whitespace, ASCII);
* ``manifest.sig``: the base64 Ed25519 signature (RFC 8032) of ``SIGNATURE_CONTEXT`` followed
  by the bytes of ``manifest.json``, under the audit signing key (its public key is what
  ``manage.py audit_public_key`` prints).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "safechat-ediscovery/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
# Domain separation: a signature over a manifest never verifies as anything else.
SIGNATURE_CONTEXT = b"safechat/v1/sig/export-manifest\n"
BLOCK = 512


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def signed_bytes(manifest: bytes) -> bytes:
    return SIGNATURE_CONTEXT + manifest


def tar_member(path: str, data: bytes, *, mtime: int) -> Iterator[bytes]:
    """One tar member (header, data, padding to 512 bytes), as ``tarfile`` writes it."""
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o600
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    yield data
    if len(data) % BLOCK:
        yield b"\0" * (BLOCK - len(data) % BLOCK)


def tar_end() -> bytes:
    return b"\0" * (2 * BLOCK)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    items: int = 0


def _members(archive: tarfile.TarFile) -> Iterable[tarfile.TarInfo]:
    for member in archive:
        if not member.isfile():
            raise ValueError(f"{member.name}: not a regular file")
        yield member


def archive_verify(path: Path, public_key: Ed25519PublicKey) -> Verdict:
    """Check an archive against its manifest and the manifest's signature.

    OK only when the signature verifies under ``public_key``, every item the manifest
    lists is present once with its size and SHA-256, and the archive holds nothing else.
    Reads one item at a time (memory bounded by the manifest and a read buffer).
    """
    try:
        with tarfile.open(path, mode="r:") as archive:
            members = {m.name: m for m in _members(archive)}
            if MANIFEST not in members or SIGNATURE not in members:
                return Verdict(False, "invalid: no manifest or no signature")
            manifest_bytes = _read(archive, members[MANIFEST])
            signature = base64.b64decode(_read(archive, members[SIGNATURE]), validate=True)
            try:
                public_key.verify(signature, signed_bytes(manifest_bytes))
            except InvalidSignature:
                return Verdict(False, "invalid: the manifest's signature does not verify")
            manifest: Mapping[str, Any] = json.loads(manifest_bytes)
            if manifest.get("format") != FORMAT:
                return Verdict(False, f"invalid: unknown format {manifest.get('format')!r}")
            listed = {item["path"]: item for item in manifest["items"]}
            extra = sorted(set(members) - set(listed) - {MANIFEST, SIGNATURE})
            if extra:
                return Verdict(False, f"invalid: {extra[0]} is not in the manifest")
            for name, item in sorted(listed.items()):
                member = members.get(name)
                if member is None:
                    return Verdict(False, f"invalid: {name} is missing")
                digest, size = _digest(archive, member)
                if size != item["size"] or digest != item["sha256"]:
                    return Verdict(False, f"invalid: {name} does not match the manifest")
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        return Verdict(False, f"invalid: unreadable archive ({type(exc).__name__}: {exc})")
    return Verdict(True, f"verified: {len(listed)} items and the signature", len(listed))


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    if handle is None:
        raise ValueError(f"{member.name}: unreadable")
    with handle:
        return handle.read()


def _digest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, int]:
    handle = archive.extractfile(member)
    if handle is None:
        raise ValueError(f"{member.name}: unreadable")
    sha, size = hashlib.sha256(), 0
    with handle:
        for piece in iter(lambda: handle.read(io.DEFAULT_BUFFER_SIZE * 16), b""):
            sha.update(piece)
            size += len(piece)
    return sha.hexdigest(), size
