"""The event loop of the long-running processes (the gateway, the simulators).

`uvloop` (libuv, in C) by default: the loop's own work per request (selecting, reading and
writing sockets, scheduling callbacks) was about a fifth of the gateway's samples under load
with asyncio's loop, written in Python. `BAYGATE_EVENT_LOOP=asyncio` keeps the standard
library's loop, for debugging with asyncio's debug mode or where uvloop is not available.
See docs/decisions/0007-gateway-throughput.md, change 16.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopKind = Literal["uvloop", "asyncio"]
DEFAULT: EventLoopKind = "uvloop"

T = TypeVar("T")


def factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(coro: Coroutine[Any, Any, T], kind: EventLoopKind = DEFAULT) -> T:
    """asyncio.run on a new loop of `kind`."""
    with asyncio.Runner(loop_factory=factory(kind)) as runner:
        return runner.run(coro)
