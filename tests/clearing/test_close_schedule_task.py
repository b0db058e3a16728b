"""The window schedule task: closes when due, follows the next window, survives failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from clearing.ports import WindowClose
from clearing.windows import CloseSchedule
from gateway.clearing_tasks import run_close_schedule

T0 = datetime(2025, 7, 1, 4, 0, tzinfo=UTC)


class FakeStore:
    def __init__(self, clock: list[datetime], fail_first: bool = False) -> None:
        self.clock = clock
        self.window = (1, T0)
        self.closed: list[tuple[int, datetime]] = []
        self.fail = fail_first

    async def open_window(self) -> tuple[int, datetime]:
        return self.window

    async def close_window(self, actor: str) -> WindowClose:
        if self.fail:
            self.fail = False
            raise OSError("database away")
        wid, _ = self.window
        now = self.clock[0]
        self.closed.append((wid, now))
        self.window = (wid + 1, now)
        return WindowClose(wid, wid + 1, now, None)


async def test_closes_each_window_when_due_and_keeps_going_after_a_failure() -> None:
    clock = [T0]
    store = FakeStore(clock, fail_first=True)
    stop = asyncio.Event()
    errors: list[Exception] = []
    task = asyncio.create_task(
        run_close_schedule(
            store, CloseSchedule(interval_s=60), lambda: clock[0], stop, poll_s=0.01,
            on_error=errors.append,
        )
    )  # fmt: skip
    await asyncio.sleep(0.05)
    assert store.closed == []  # not due yet
    clock[0] = T0 + timedelta(seconds=60)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if store.closed:
            break
    assert store.closed == [(1, T0 + timedelta(seconds=60))]
    assert len(errors) == 1  # the first attempt failed and was retried
    clock[0] = T0 + timedelta(seconds=119)
    await asyncio.sleep(0.05)
    assert len(store.closed) == 1  # window 2 opened at +60 s is due at +120 s
    clock[0] = T0 + timedelta(seconds=121)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(store.closed) == 2:
            break
    assert [w for w, _ in store.closed] == [1, 2]
    stop.set()
    await asyncio.wait_for(task, timeout=5)
