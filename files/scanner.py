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

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

logger = logging.getLogger(__name__)

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


def _connect(timeout: float | None = None) -> socket.socket:
    if timeout is None:
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


def clamd_ping(timeout: float | None = None) -> None:
    """Raise ``ScannerUnavailable`` unless clamd answers ``PING`` with ``PONG`` (within
    ``timeout`` seconds per socket operation; default ``SAFECHAT_CLAMD_TIMEOUT_SECONDS``)."""
    try:
        with _connect(timeout) as sock:
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


class ScannerState(StrEnum):
    """Whether files can be scanned now, as this process last found (``scanner_state``)."""

    READY = "ready"  # configured, and answers PING
    UNCONFIGURED = "unconfigured"  # neither SAFECHAT_CLAMD_SOCKET nor SAFECHAT_CLAMD_HOST
    UNREACHABLE = "unreachable"  # configured, but no PONG


# A page or an upload's HEAD asks often; clamd is asked at most this often per process.
SCANNER_STATE_SECONDS = 15.0
# Short: the question blocks a page render or a HEAD (a unix socket answers at once).
SCANNER_PROBE_TIMEOUT_SECONDS = 1.0

_state_lock = threading.Lock()
_state: tuple[float, ScannerState] | None = None  # (monotonic time asked, answer)
_warned = False


def scanner_state(*, fresh: bool = False) -> ScannerState:
    """Whether the malware scanner can scan now: ``UNCONFIGURED`` without an address,
    else ``READY`` if clamd answers ``PING`` within ``SCANNER_PROBE_TIMEOUT_SECONDS``,
    else ``UNREACHABLE``. The answer is kept ``SCANNER_STATE_SECONDS`` in this process
    (``fresh``: ask again now). It tells people and operators why files wait; it never
    releases one (only a verdict does, ``files.services.file_scan``)."""
    global _state
    now = time.monotonic()
    with _state_lock:
        if not fresh and _state is not None and now - _state[0] < SCANNER_STATE_SECONDS:
            return _state[1]
    if not clamd_configured():
        state = ScannerState.UNCONFIGURED
    else:
        try:
            clamd_ping(timeout=SCANNER_PROBE_TIMEOUT_SECONDS)
        except ScannerUnavailable:
            state = ScannerState.UNREACHABLE
        else:
            state = ScannerState.READY
    with _state_lock:
        _state = (time.monotonic(), state)
    return state


SCANNER_WARNINGS = {
    ScannerState.UNCONFIGURED: (
        "no malware scanner is configured (SAFECHAT_CLAMD_SOCKET or SAFECHAT_CLAMD_HOST): "
        "uploaded files wait, unscanned and invisible, until one is"
    ),
    ScannerState.UNREACHABLE: (
        "the malware scanner (clamd) does not answer: uploaded files wait, unscanned and "
        "invisible, until it does"
    ),
}


def scanner_check_at_start() -> ScannerState:
    """Ask the scanner once as a process starts (web, worker) and log a warning, once per
    process, when files cannot be scanned: operators learn it before anyone uploads."""
    global _warned
    state = scanner_state(fresh=True)
    if state != ScannerState.READY and not _warned:
        _warned = True
        logger.warning(SCANNER_WARNINGS[state])
    return state


def scanner_state_forget() -> None:
    """Forget what was found (tests, and a setting changed under a running process)."""
    global _state, _warned
    with _state_lock:
        _state = None
    _warned = False
