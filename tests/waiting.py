"""Waiting in tests for something another process or task does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(pred: Callable[[], bool], timeout_s: float = 15.0, interval_s: float = 0.05) -> None:
    """Return once `pred()` holds; fail the test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval_s)
