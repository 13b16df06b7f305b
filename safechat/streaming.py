"""Streamed response bodies that stream under both WSGI and ASGI.

Django's ``StreamingHttpResponse`` under ASGI reads a *synchronous* iterator whole into
memory before sending a byte (and warns "StreamingHttpResponse must consume synchronous
iterators in order to serve them asynchronously"). A body built by sync code (database
reads, decryption) is therefore handed to ASGI as an asynchronous iterator that pulls a
batch at a time in the request's sync thread (``sync_to_async``, thread-sensitive, so
the database connection is the one the view used); under WSGI it is passed on as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest

# Bytes pulled per hop to the worker thread: a hop costs far more than producing a
# 64 KiB chunk, so a few chunks go together; memory stays bounded by about this.
PULL_BYTES = 1024 * 1024


def streamed_body(
    request: HttpRequest, chunks: Iterator[bytes]
) -> Iterator[bytes] | AsyncIterator[bytes]:
    """``chunks`` as a ``StreamingHttpResponse`` body that streams under ``request``'s server.

    Under ASGI: an asynchronous iterator yielding the same bytes in batches of about
    ``PULL_BYTES``, each batch produced by ``chunks`` in the sync thread; memory stays
    bounded and an exception raised by ``chunks`` ends the body there. Under WSGI (and
    Django's test client): ``chunks`` itself.
    """
    if isinstance(request, ASGIRequest):
        return _pulled_in_thread(chunks)
    return chunks


def _pull_batch(chunks: Iterator[bytes]) -> bytes | None:
    """The next pieces of ``chunks``, up to about ``PULL_BYTES``; None at the end."""
    batch: list[bytes] = []
    size = 0
    for piece in chunks:
        batch.append(piece)
        size += len(piece)
        if size >= PULL_BYTES:
            break
    return b"".join(batch) if batch else None


async def _pulled_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    step = sync_to_async(_pull_batch)
    while (piece := await step(chunks)) is not None:
        yield piece
