"""A small clamd client: PING and INSTREAM over a unix socket or TCP.

The protocol (clamd(8), "INSTREAM"): the command ``zINSTREAM\\0``, then chunks each
prefixed by their length as a 4-byte big-endian unsigned integer, ended by a zero-length
chunk; clamd answers one NUL-terminated line, ``stream: OK`` or
``stream: <signature> FOUND`` (or ``... ERROR``). Nothing is written to disk by this side:
the bytes go from memory to the socket.

Configured by ``SAFECHAT_CLAMD_SOCKET`` (a unix socket path) or ``SAFECHAT_CLAMD_HOST`` and
``SAFECHAT_CLAMD_PORT``. With neither set, scanning is not possible: files wait in
"pending scan" and are never let through unscanned.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

_LENGTH = struct.Struct(">I")
# clamd refuses a single chunk above its StreamMaxLength; pieces are re-cut to this size.
MAX_PIECE = 64 * 1024
MAX_REPLY = 4096


class ScannerUnavailable(Exception):
    """clamd is not configured, unreachable, or answered with an error: try again later."""


@dataclass(frozen=True)
class ScanVerdict:
    """clamd's answer for one stream: clean, or infected with the named signature."""

    clean: bool
    signature: str = ""


def clamd_configured() -> bool:
    """Whether a clamd address is configured (a unix socket path, or a host)."""
    return bool(settings.SAFECHAT_CLAMD_SOCKET or settings.SAFECHAT_CLAMD_HOST)


def _connect() -> socket.socket:
    timeout = settings.SAFECHAT_CLAMD_TIMEOUT_SECONDS
    try:
        if settings.SAFECHAT_CLAMD_SOCKET:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(settings.SAFECHAT_CLAMD_SOCKET)
            except OSError:
                sock.close()
                raise
            return sock
        if settings.SAFECHAT_CLAMD_HOST:
            return socket.create_connection(
                (settings.SAFECHAT_CLAMD_HOST, settings.SAFECHAT_CLAMD_PORT), timeout=timeout
            )
    except OSError as exc:
        raise ScannerUnavailable(f"clamd is unreachable: {type(exc).__name__}") from exc
    raise ScannerUnavailable("no clamd configured (SAFECHAT_CLAMD_SOCKET or SAFECHAT_CLAMD_HOST)")


def _read_reply(sock: socket.socket) -> str:
    data = bytearray()
    while b"\0" not in data:
        piece = sock.recv(MAX_REPLY)
        if not piece:
            break
        data += piece
        if len(data) > MAX_REPLY:
            raise ScannerUnavailable("clamd sent an overlong reply")
    return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def clamd_ping() -> None:
    """Raise ``ScannerUnavailable`` unless clamd answers ``PING`` with ``PONG``."""
    try:
        with _connect() as sock:
            sock.sendall(b"zPING\0")
            reply = _read_reply(sock)
    except OSError as exc:
        raise ScannerUnavailable(f"clamd did not answer: {type(exc).__name__}") from exc
    if reply != "PONG":
        raise ScannerUnavailable("clamd answered PING with something else")


def parse_instream_reply(reply: str) -> ScanVerdict:
    """``stream: OK`` -> clean; ``stream: <name> FOUND`` -> infected; anything else raises."""
    if reply == "stream: OK":
        return ScanVerdict(clean=True)
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        return ScanVerdict(clean=False, signature=reply[len("stream: ") : -len(" FOUND")])
    # "INSTREAM size limit exceeded. ERROR" and the like: no verdict, so no release.
    raise ScannerUnavailable(f"clamd could not scan the stream: {reply[:200]}")


def _send(sock: socket.socket, data: bytes | memoryview) -> None:
    try:
        sock.sendall(data)
    except OSError as exc:
        raise ScannerUnavailable(f"clamd scan failed: {type(exc).__name__}") from exc


def scan_stream(pieces: Iterable[bytes]) -> ScanVerdict:
    """Send ``pieces`` to clamd with INSTREAM and return its verdict.

    Memory: one piece at a time. Raises ``ScannerUnavailable`` when clamd is not
    configured, unreachable, times out or cannot give a verdict; the caller keeps the
    file pending and tries again. Whatever ``pieces`` itself raises (a blob that fails
    to decrypt, say) propagates unchanged.
    """
    with _connect() as sock:
        _send(sock, b"zINSTREAM\0")
        for piece in pieces:
            view = memoryview(piece)
            for start in range(0, len(view), MAX_PIECE):
                part = view[start : start + MAX_PIECE]
                _send(sock, _LENGTH.pack(len(part)))
                _send(sock, part)
        _send(sock, _LENGTH.pack(0))
        try:
            reply = _read_reply(sock)
        except OSError as exc:
            raise ScannerUnavailable(f"clamd did not answer: {type(exc).__name__}") from exc
    return parse_instream_reply(reply)
