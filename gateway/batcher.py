"""A generic asyncio micro-batcher: many concurrent callers, one handler call per batch.

`await batcher.submit(item)` queues the item and resolves with its own result once the batch
it landed in has been handled. A worker takes the first waiting item, then everything queued
behind it up to `batch_max`, waiting at most `linger_ms` for more when the queue runs dry, and
calls `handler(items) -> results` (same length, same order). Under load batches fill without
lingering; when idle an item waits at most `linger_ms`. `concurrency` workers may run batches
side by side (use 1 when the handler must see batches one at a time); a batch that would start
while another runs waits until at least `extra_batch_items_min` items are queued (or none
runs), so that small items gather into one larger batch while a large one still overlaps.

Limits: a full queue (`queue_depth_max`) refuses new items at once with `BatcherFull` instead
of letting latency grow without bound. A handler exception fails every item of its batch with
that exception. `aclose()` stops taking items, finishes what is queued, then stops the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BATCH_MAX_LIMIT = 100_000
QUEUE_DEPTH_MAX_LIMIT = 10_000_000
LINGER_MS_MAX = 1_000.0
CONCURRENCY_MAX = 64


class BatcherFull(Exception):
    """The queue is at `queue_depth_max`: the caller should shed load (e.g. answer 503)."""


class BatcherClosed(Exception):
    pass


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        handler: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        batch_max: int = 500,
        linger_ms: float = 1.0,
        queue_depth_max: int = 50_000,
        concurrency: int = 1,
        extra_batch_items_min: int = 1,
        name: str = "batcher",
    ) -> None:
        if not 1 <= batch_max <= BATCH_MAX_LIMIT:
            raise ValueError(f"batch_max must be in [1, {BATCH_MAX_LIMIT}]")
        if not 0 <= linger_ms <= LINGER_MS_MAX:
            raise ValueError(f"linger_ms must be in [0, {LINGER_MS_MAX}]")
        if not 1 <= queue_depth_max <= QUEUE_DEPTH_MAX_LIMIT:
            raise ValueError(f"queue_depth_max must be in [1, {QUEUE_DEPTH_MAX_LIMIT}]")
        if not 1 <= concurrency <= CONCURRENCY_MAX:
            raise ValueError(f"concurrency must be in [1, {CONCURRENCY_MAX}]")
        if not 1 <= extra_batch_items_min <= BATCH_MAX_LIMIT:
            raise ValueError(f"extra_batch_items_min must be in [1, {BATCH_MAX_LIMIT}]")
        self._handler = handler
        self.batch_max = batch_max
        self.linger_s = linger_ms / 1000.0
        self.queue_depth_max = queue_depth_max
        self.concurrency = concurrency
        self.extra_batch_items_min = extra_batch_items_min
        self.name = name
        self._running = 0  # batches taken and not yet handled
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._closing = False
        self.batches = 0  # counters for metrics
        self.items = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queue `item` and return the future of its result (for callers that fan out)."""
        if self._closing:
            raise BatcherClosed(f"{self.name} is closed")
        if len(self._queue) >= self.queue_depth_max:
            raise BatcherFull(f"{self.name}: {self.queue_depth_max} items already queued")
        if not self._workers:
            self._start()
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        assert self._wakeup is not None
        self._wakeup.set()
        return fut

    async def submit(self, item: T) -> R:
        return await self.submit_nowait(item)

    def _start(self) -> None:
        self._wakeup = asyncio.Event()
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self.name}-{i}")
            for i in range(self.concurrency)
        ]

    def _may_start(self) -> bool:
        """A batch starts when none runs, or when enough items wait to be worth a second."""
        return (
            self._running == 0
            or len(self._queue) >= self.extra_batch_items_min
            or self._closing
        )

    async def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        assert self._wakeup is not None
        while not self._queue or not self._may_start():
            if self._closing and not self._queue:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        self._running += 1
        try:
            if len(self._queue) < self.batch_max and self.linger_s > 0 and not self._closing:
                await asyncio.sleep(self.linger_s)
            n = min(len(self._queue), self.batch_max)
            batch = [self._queue.popleft() for _ in range(n)]
        except BaseException:
            self._done_one()
            raise
        if not batch:
            self._done_one()
        return batch

    def _done_one(self) -> None:
        self._running -= 1
        if self._wakeup is not None:
            self._wakeup.set()  # a worker waiting for this batch to end may start

    async def _work(self) -> None:
        while True:
            batch = await self._take()
            if not batch:
                if self._closing:
                    return
                continue
            if self._queue and self._wakeup is not None:
                self._wakeup.set()  # let another worker start on what is left
            try:
                await self._run(batch)
            finally:
                self._done_one()

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [it for it, _ in batch]
        try:
            results = await self._handler(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"{self.name}: handler returned {len(results)} results for {len(items)} items"
                )
        except asyncio.CancelledError:
            for _, fut in batch:
                if not fut.done():
                    fut.cancel()
            raise
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(items)
        for (_, fut), res in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(res)

    async def aclose(self) -> None:
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def cancel(self) -> None:
        """Stop at once: queued items fail with BatcherClosed."""
        self._closing = True
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(BatcherClosed(f"{self.name} is closed"))
