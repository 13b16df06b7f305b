"""The first page of a PDF as a preview, rendered by PDFium in a sandboxed child process.

A PDF is a program for a large C++ interpreter; the file is hostile until proven
otherwise, and clamd's "clean" proves little about a parser bug. So PDFium (through
pypdfium2, which bundles it) never runs in the worker: ``files/pdf_render.py`` runs in a
process of its own, started for one PDF and ended after it, which

* gets the plaintext over a pipe (never a file) and answers raw pixels over another;
* runs under limits set by this side before the first byte is sent
  (``resource.prlimit``): ``PDF_RENDER_MEMORY_BYTES`` of address space,
  ``PDF_RENDER_CPU_SECONDS`` of CPU, no file writes at all (``RLIMIT_FSIZE`` 0: a write
  to any file kills it), a few descriptors, no core dump;
* is killed at ``PDF_RENDER_TIMEOUT_SECONDS`` of wall time, and its answer is cut at the
  size of the largest preview;
* starts with ``python -I`` and an empty environment (no key or secret of the worker's
  environment reaches it) in ``/``;
* refuses a page larger than ``PDF_MAX_PAGE_POINTS`` a side (the PDF specification's
  largest) or so thin that a side would be under a pixel, before drawing anything.

This side decodes nothing the child says beyond a fixed 8-byte header: it checks the
dimensions against the preview's bounds and the pixel count against them, then encodes the
JPEG itself. Anything that fails is "no preview", never an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import selectors
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

PDF_RENDER_SCRIPT = Path(__file__).with_name("pdf_render.py")
PDF_MAX_PAGE_POINTS = 14_400  # 200 inches: the largest page of the PDF specification
PDF_RENDER_TIMEOUT_SECONDS = 10.0
PDF_RENDER_CPU_SECONDS = 5
PDF_RENDER_MEMORY_BYTES = 512 * 1024 * 1024  # address space, the interpreter's included
PDF_RENDER_OPEN_FILES = 64
_HEADER = struct.Struct(">4sHH")
_MAGIC = b"SCPV"


def _render_limits() -> list[tuple[int, int]]:
    return [
        (resource.RLIMIT_AS, PDF_RENDER_MEMORY_BYTES),
        (resource.RLIMIT_CPU, PDF_RENDER_CPU_SECONDS),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, PDF_RENDER_OPEN_FILES),
        (resource.RLIMIT_CORE, 0),
    ]


def pdf_render_command(*, max_source: int, edge: int) -> list[str]:
    """The child's command line (``files/pdf_render.py`` under the same interpreter)."""
    return [
        sys.executable,
        "-I",
        str(PDF_RENDER_SCRIPT),
        str(max_source),
        str(edge),
        str(PDF_MAX_PAGE_POINTS),
    ]


def sandboxed_run(
    command: Sequence[str], data: bytes, *, max_output: int, timeout: float
) -> tuple[int, bytes] | None:
    """Run ``command`` under the render limits with ``data`` on its standard input.

    Returns its exit status (negative: the signal that ended it) and its output, or None
    when it could not start, outlived ``timeout`` seconds, or wrote more than
    ``max_output`` bytes (it is killed then). Nothing is written to disk by either side.
    """
    try:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script, no shell
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env={},
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        logger.warning("pdf preview: the renderer did not start: %s", type(exc).__name__)
        return None
    try:
        # Set before the first byte of the PDF is sent: the child only parses what it reads.
        for limit, value in _render_limits():
            resource.prlimit(child.pid, limit, (value, value))
        return _exchange(child, data, max_output=max_output, timeout=timeout)
    except (OSError, ValueError) as exc:
        # Limits that cannot be set mean no rendering at all, never one without them.
        logger.warning("pdf preview: the renderer could not run: %s", type(exc).__name__)
        return None
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _exchange(
    child: subprocess.Popen[bytes], data: bytes, *, max_output: int, timeout: float
) -> tuple[int, bytes] | None:
    """Feed ``data`` and collect the answer within the deadline (one thread, non-blocking)."""
    if child.stdin is None or child.stdout is None:  # never: both are pipes
        return None
    deadline = time.monotonic() + timeout
    to_send = memoryview(data)
    answer = bytearray()
    with selectors.DefaultSelector() as selector:
        os.set_blocking(child.stdin.fileno(), False)
        selector.register(child.stdout, selectors.EVENT_READ)
        if to_send:
            selector.register(child.stdin, selectors.EVENT_WRITE)
        else:
            child.stdin.close()
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                logger.info("pdf preview: the renderer ran out of time")
                return None
            for key, _events in selector.select(left):
                if key.fileobj is child.stdin:
                    try:
                        sent = os.write(child.stdin.fileno(), to_send[: 64 * 1024])
                    except BrokenPipeError:
                        sent = len(to_send)  # it stopped reading: its exit status tells why
                    to_send = to_send[sent:]
                    if not to_send:
                        selector.unregister(child.stdin)
                        child.stdin.close()
                else:
                    piece = os.read(child.stdout.fileno(), 64 * 1024)
                    if not piece:
                        selector.unregister(child.stdout)
                        continue
                    answer += piece
                    if len(answer) > max_output:
                        logger.info("pdf preview: the renderer said too much")
                        return None
    try:
        status = child.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        logger.info("pdf preview: the renderer ran out of time")
        return None
    return status, bytes(answer)


def pdf_first_page_pixels(
    data: bytes, *, max_source: int, edge: int
) -> tuple[int, int, bytes] | None:
    """The first page of the PDF ``data`` as (width, height, RGB bytes), its longer side
    ``edge`` pixels; None when it cannot or may not be rendered (see the module)."""
    if len(data) > max_source:
        return None
    result = sandboxed_run(
        pdf_render_command(max_source=max_source, edge=edge),
        data,
        max_output=_HEADER.size + edge * edge * 3,
        timeout=PDF_RENDER_TIMEOUT_SECONDS,
    )
    if result is None:
        return None
    status, answer = result
    if status != 0:
        logger.info("pdf preview: none (renderer exit status %d)", status)
        return None
    if len(answer) < _HEADER.size:
        return None
    magic, width, height = _HEADER.unpack_from(answer)
    pixels = answer[_HEADER.size :]
    if (
        magic != _MAGIC
        or not (1 <= width <= edge and 1 <= height <= edge)
        or len(pixels) != width * height * 3
    ):
        logger.warning("pdf preview: the renderer's answer is malformed")
        return None
    return width, height, pixels
