"""Background task of the clearing engine: closing windows on a schedule.

`run_close_schedule` closes the open window when `CloseSchedule.due_at(opened_at)` is reached
(a time already past, e.g. after a restart, closes at once), then follows the next window.
It sleeps at most `poll_s` at a time, so a stop or a manual close is noticed promptly, and a
failed close is retried after `poll_s` without ending the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from clearing.ports import WindowClose
from clearing.windows import CloseSchedule
from gateway.waits import wait_event

POLL_S_MAX = 60.0


class _WindowStore(Protocol):
    async def open_window(self) -> tuple[int, datetime]: ...

    async def close_window(self, actor: str) -> WindowClose: ...


async def run_close_schedule(
    store: _WindowStore,
    schedule: CloseSchedule,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
    *,
    actor: str = "scheduler",
    poll_s: float = 1.0,
    on_close: Callable[[WindowClose], Any] | None = None,
    on_error: Callable[[Exception], Any] | None = None,
) -> None:
    poll_s = min(max(poll_s, 0.01), POLL_S_MAX)
    while not stop.is_set():
        wait_s = poll_s
        try:
            _, opened_at = await store.open_window()
            due = schedule.due_at(opened_at)
            if due is not None:
                now = clock()
                if now >= due:
                    closed = await store.close_window(actor)
                    if on_close is not None:
                        on_close(closed)
                    continue
                wait_s = min(poll_s, (due - now).total_seconds())
        except Exception as exc:  # keep the schedule alive: report and retry later
            if on_error is not None:
                on_error(exc)
        await wait_event(stop, wait_s)
