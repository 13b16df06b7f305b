"""safechat.streaming: a sync-built body streams under ASGI as under WSGI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from django.test import AsyncRequestFactory, RequestFactory

from safechat.streaming import PULL_BYTES, streamed_body


def _pieces(count: int, size: int, pulled: list[int]) -> Iterator[bytes]:
    for number in range(count):
        pulled.append(number)
        yield bytes([number % 256]) * size


async def _read(body: AsyncIterator[bytes]) -> list[bytes]:
    return [piece async for piece in body]


def test_under_asgi_the_body_is_asynchronous_and_pulled_a_batch_at_a_time() -> None:
    # given a body of eight half-MiB pieces, made by sync code
    pulled: list[int] = []
    request = AsyncRequestFactory().get("/")

    # when it is handed to an ASGI response
    body = streamed_body(request, _pieces(8, PULL_BYTES // 2, pulled))

    # then it is an asynchronous iterator that has pulled nothing yet
    assert isinstance(body, AsyncIterator)
    assert pulled == []
    # and it yields the same bytes, in batches of about PULL_BYTES (never the whole)
    batches = asyncio.run(_read(body))
    assert b"".join(batches) == b"".join(bytes([n]) * (PULL_BYTES // 2) for n in range(8))
    assert [len(batch) for batch in batches] == [PULL_BYTES] * 4


def test_under_wsgi_the_body_is_the_iterator_itself() -> None:
    pulled: list[int] = []
    chunks = _pieces(2, 10, pulled)

    body = streamed_body(RequestFactory().get("/"), chunks)

    assert body is chunks
    assert pulled == []
