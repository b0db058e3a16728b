"""The micro-batcher: one handler call per batch, results routed back, limits enforced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from gateway.batcher import BatcherClosed, BatcherFull, MicroBatcher


async def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    seen: list[list[int]] = []

    async def handler(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    b = MicroBatcher(handler, batch_max=8, linger_ms=5)
    results = await asyncio.gather(*(b.submit(i) for i in range(20)))
    assert results == [i * 10 for i in range(20)]
    assert sorted(i for batch in seen for i in batch) == list(range(20))
    assert all(len(batch) <= 8 for batch in seen) and len(seen) < 20
    assert b.items == 20 and b.batches == len(seen)
    await b.aclose()


async def test_a_failing_batch_fails_its_items_only() -> None:
    async def handler(items: Sequence[int]) -> list[int]:
        if 3 in items:
            raise RuntimeError("boom")
        return list(items)

    b = MicroBatcher(handler, batch_max=1, linger_ms=0)
    res = await asyncio.gather(*(b.submit(i) for i in range(5)), return_exceptions=True)
    assert [type(r).__name__ if isinstance(r, Exception) else r for r in res] == [
        0, 1, 2, "RuntimeError", 4,
    ]  # fmt: skip
    await b.aclose()


async def test_a_full_queue_refuses_at_once_and_a_closed_batcher_refuses_everything() -> None:
    gate = asyncio.Event()

    async def handler(items: Sequence[int]) -> list[int]:
        await gate.wait()
        return list(items)

    b = MicroBatcher(handler, batch_max=1, linger_ms=0, queue_depth_max=2)
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.sleep(0.01)  # the worker holds item 0
    queued = [b.submit_nowait(1), b.submit_nowait(2)]
    with pytest.raises(BatcherFull):
        b.submit_nowait(3)
    gate.set()
    assert await first == 0 and [await f for f in queued] == [1, 2]
    await b.aclose()
    with pytest.raises(BatcherClosed):
        b.submit_nowait(4)


async def test_close_finishes_what_is_queued() -> None:
    async def handler(items: Sequence[int]) -> list[int]:
        await asyncio.sleep(0.001)
        return list(items)

    b = MicroBatcher(handler, batch_max=3, linger_ms=0, concurrency=2)
    futs = [b.submit_nowait(i) for i in range(10)]
    await b.aclose()
    assert [f.result() for f in futs] == list(range(10))


async def test_wrong_result_count_is_an_error_not_a_silent_mismatch() -> None:
    async def handler(items: Sequence[int]) -> list[int]:
        return [1]

    b = MicroBatcher(handler, batch_max=4, linger_ms=5)
    res = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in res)
    await b.aclose()


def test_limits_are_checked() -> None:
    async def handler(items: Sequence[int]) -> list[int]:
        return list(items)

    for kwargs in ({"batch_max": 0}, {"linger_ms": -1}, {"queue_depth_max": 0}, {"concurrency": 0}):
        with pytest.raises(ValueError):
            MicroBatcher(handler, **kwargs)  # type: ignore[arg-type]


async def _until(predicate: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("extra_min", [1, 5])
async def test_a_second_batch_starts_beside_a_running_one_only_on_a_full_enough_queue(
    extra_min: int,
) -> None:
    started: list[list[int]] = []
    release = asyncio.Event()

    async def handler(items: Sequence[int]) -> list[int]:
        started.append(list(items))
        await release.wait()
        return list(items)

    b = MicroBatcher(handler, batch_max=100, linger_ms=0, concurrency=2,
                     extra_batch_items_min=extra_min)  # fmt: skip
    first = asyncio.ensure_future(b.submit(0))
    await _until(lambda: len(started) == 1)  # one batch runs, the other worker is free
    waiting = [asyncio.ensure_future(b.submit(i)) for i in range(1, 4)]  # 3 queued
    await asyncio.sleep(0.02)
    if extra_min == 1:
        assert started[1:] == [[1, 2, 3]]  # the free worker took them at once
    else:
        assert started == [[0]]  # 3 < 5: they wait for a larger batch or the first to end
        waiting += [asyncio.ensure_future(b.submit(i)) for i in (4, 5)]
        await _until(lambda: len(started) == 2)
        assert started[1] == [1, 2, 3, 4, 5]
    release.set()
    assert await asyncio.gather(first, *waiting) == list(range(len(waiting) + 1))
    await b.aclose()


async def test_items_below_the_second_batch_minimum_go_when_the_running_batch_ends() -> None:
    started: list[list[int]] = []
    release = asyncio.Event()

    async def handler(items: Sequence[int]) -> list[int]:
        started.append(list(items))
        if items[0] == 0:
            await release.wait()
        return list(items)

    b = MicroBatcher(handler, batch_max=100, linger_ms=0, concurrency=2,
                     extra_batch_items_min=50)  # fmt: skip
    first = asyncio.ensure_future(b.submit(0))
    await _until(lambda: len(started) == 1)
    rest = [asyncio.ensure_future(b.submit(i)) for i in range(1, 4)]
    await asyncio.sleep(0.02)
    assert started == [[0]]
    release.set()
    assert await asyncio.gather(first, *rest) == [0, 1, 2, 3]
    assert started == [[0], [1, 2, 3]]
    await b.aclose()
