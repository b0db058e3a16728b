"""Loops that wait for a wake-up event with a time limit still stop when cancelled, even when
the event was set just before (asyncio.wait_for on Python 3.11 loses that cancellation)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.lsm_runner import LsmRunner, RunReport
from gateway.waits import wait_event


async def test_wait_event_reports_set_and_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10) is True


async def test_cancelled_just_after_the_event_is_set_the_wait_is_cancelled() -> None:
    event = asyncio.Event()
    done: list[str] = []

    async def loop() -> None:
        while True:
            await wait_event(event, 10)
            event.clear()
            done.append("woke")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    await asyncio.sleep(0)  # whatever waits on the event has run, the loop not yet resumed
    task.cancel()
    async with asyncio.timeout(2):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


class _IdleRunner(LsmRunner):
    async def run_once(self, *args: Any, **kwargs: Any) -> RunReport:
        return RunReport()


async def test_resolver_woken_as_it_is_stopped_stops() -> None:
    """What hung a gateway's shutdown: a settlement confirmation woke the resolver just as
    the gateway stopped it."""
    runner = _IdleRunner(store=None, interval_s=10)  # type: ignore[arg-type]
    runner.start()
    loop_task = runner._task
    assert loop_task is not None
    await asyncio.sleep(0.01)
    runner.wake()
    await asyncio.sleep(0)
    stopping = asyncio.create_task(runner.stop())
    done, _ = await asyncio.wait({stopping}, timeout=2)
    assert stopping in done and loop_task.done()
