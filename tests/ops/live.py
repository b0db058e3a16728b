"""A live gateway for the operations tests: the whole stack on its own database, with traffic.

`live_stack` is `gateway.harness.running_stack` (the e2e `stack` fixture's engine) on a
database of its own, so a module can share one stack between tests. The state collector
runs every 0.2 s so the tests do not wait on the production interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from gateway.config import load_settings
from gateway.harness import Stack, running_stack
from gateway.traffic import DaySummary, TrafficPlan, run_day
from tests.conftest import create_test_database, drop_test_database

COLLECT_INTERVAL_S = 0.2
QUIET_WAIT_S_MAX = 60.0
IN_FLIGHT = ("RECEIVED", "RESERVED", "QUEUED")


@asynccontextmanager
async def live_stack(pg_dsn: str, data_dir: Path, **overrides: Any) -> AsyncIterator[Stack]:
    dsn = await create_test_database(pg_dsn)
    try:
        settings = load_settings(
            DATABASE_URL=dsn, data_dir=data_dir, port=0, transfer_timeout_s=10,
            metrics_collect_interval_s=COLLECT_INTERVAL_S, **overrides,
        )  # fmt: skip
        async with running_stack(settings) as stack:
            yield stack
    finally:
        await drop_test_database(pg_dsn, dsn)


async def send_traffic(
    stack: Stack, count: int, *, seed: int, shares: Mapping[str, float] | None = None
) -> DaySummary:
    """`count` provider messages (1-2 transfers each) over HTTP, every answer recorded."""
    plan = TrafficPlan(seed=seed, tx_per_msg_max=2, tag=f"OPS{seed}",
                       **({"shares": dict(shares)} if shares is not None else {}))  # fmt: skip
    return await run_day(stack.base_url, stack.directory, stack.keys, plan,
                         rate_per_s=400, count=count, concurrency=8)  # fmt: skip


async def wait_quiet(stack: Stack, timeout_s: float = QUIET_WAIT_S_MAX) -> None:
    """Until every transfer is final and every delivery and callback is done."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            busy = await conn.fetchval(
                """SELECT (SELECT count(*) FROM transfers WHERE state = ANY($1::text[]))
                        + (SELECT count(*) FROM outbox WHERE done_at IS NULL)""",
                list(IN_FLIGHT),
            )
            if busy == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{busy} transfers or deliveries still in flight")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def operator(stack: Stack, method: str, path: str, **kw: Any) -> tuple[int, Any, bytes]:
    """(status, headers, body) of an operator request."""
    headers = {"Authorization": f"Bearer {stack.operator_token}", **kw.pop("headers", {})}
    async with aiohttp.ClientSession() as s:
        async with s.request(method, stack.base_url + path, headers=headers, **kw) as r:
            return r.status, r.headers, await r.read()


async def scrape(stack: Stack) -> str:
    async with aiohttp.ClientSession() as s, s.get(stack.base_url + "/metrics") as r:
        assert r.status == 200
        return await r.text()


async def wait_for_snapshot_after(since_s: float, timeout_s: float = 10.0) -> None:
    """Until the collector has published a snapshot taken after `since_s` (Unix time)."""
    from gateway import metrics

    deadline = time.monotonic() + timeout_s
    while (metrics.REGISTRY.get_sample_value("baygate_snapshot_timestamp_seconds") or 0) <= since_s:
        if time.monotonic() > deadline:
            raise AssertionError("no state snapshot published")
        await asyncio.sleep(0.05)
