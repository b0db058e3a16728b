"""Waiting for an asyncio.Event with a time limit, in loops that are stopped by cancelling.

Not `asyncio.wait_for(event.wait(), timeout_s)`: on Python 3.11 it runs the wait as a task of
its own, and when the event is set and that task has finished just before the loop's task is
cancelled, wait_for returns the result and the cancellation is lost (CPython gh-86296, fixed
in 3.12). The loop then runs on and whoever awaits its end after cancelling it waits for
ever: the liquidity-saving runner did so at shutdown when a settlement confirmation woke it
just before. `asyncio.timeout` waits in the caller's own task and keeps the cancellation.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` have passed; True when it was set."""
    try:
        async with asyncio.timeout(max(timeout_s, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True
