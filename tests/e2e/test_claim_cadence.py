"""The delivery workers of every gateway process on one database share one claim cadence: a
claim within the linger of the last one that took rows, by any worker, takes nothing and
says when the next may go; after the linger one claim takes everything due, so that each
receiver's message carries the transfers of every process. A full claim holds nothing
back, and a claim time far ahead of a worker's clock does not stop it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import asyncpg
import pytest

from gateway.delivery import DeliveryConfig, DeliveryWorker
from gateway.harness import Stack
from gateway.wiring import DELIVERY
from tests.e2e.test_grouped_messages import _send_hk

LINGER_S = 0.1
PROXY = "+86-13800138000"


def _workers(stack: Stack, clock: Callable[[], dt.datetime], n: int, **config: int) -> list[DeliveryWorker]:
    own = stack.app[DELIVERY]
    return [
        DeliveryWorker(
            pool=own.pool, clearing=own.clearing, directory=own.directory, clock=clock,
            gateway_key=own.gateway_key, config=DeliveryConfig(claim_linger_s=LINGER_S, **config),
        )
        for _ in range(n)
    ]  # fmt: skip


def _deliveries(rows: list[asyncpg.Record]) -> int:
    return sum(r["kind"] == "deliver" for r in rows)


async def _without_own_claims(stack: Stack) -> dt.datetime:
    """Stop the stack's own delivery worker (its claims stay out of the way); a time by which
    every row the test creates is due."""
    await stack.app[DELIVERY].stop()
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)


async def _execute(stack: Stack, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_claims_go_a_linger_apart_whichever_worker_claims(stack: Stack) -> None:
    start = await _without_own_claims(stack)
    now = [start]
    a, b = _workers(stack, lambda: now[0], 2)

    await _send_hk(stack, "hk-801", PROXY, 3)
    rows, wait_s = await a._claim()
    assert _deliveries(rows) == 3 and wait_s is None

    await _send_hk(stack, "hk-801", PROXY, 2)
    now[0] = start + dt.timedelta(seconds=0.04)
    rows, wait_s = await b._claim()  # within a's linger: nothing, and when to come back
    assert rows == [] and wait_s == pytest.approx(LINGER_S - 0.04)
    rows, wait_s = await a._claim()  # a itself is held back the same way
    assert rows == [] and wait_s == pytest.approx(LINGER_S - 0.04)

    now[0] = start + dt.timedelta(seconds=LINGER_S)
    rows, wait_s = await b._claim()
    assert _deliveries(rows) == 2 and wait_s is None

    now[0] += dt.timedelta(seconds=LINGER_S)
    assert await b._claim() == ([], None)  # nothing due: the next claim may go at once


async def test_a_full_claim_holds_nothing_back(stack: Stack) -> None:
    now = await _without_own_claims(stack)
    a, b = _workers(stack, lambda: now, 2, claim_batch_max=2)

    await _send_hk(stack, "hk-801", PROXY, 5)
    sizes = [len((await w._claim())[0]) for w in (a, b, a)]
    assert sizes == [2, 2, 1]  # the last, short of the limit, sets the clock
    assert await b._claim() == ([], pytest.approx(LINGER_S))


async def test_a_claim_time_far_ahead_does_not_stop_claims(stack: Stack) -> None:
    now = await _without_own_claims(stack)
    [a] = _workers(stack, lambda: now, 1)
    # Set by a process whose clock runs a day ahead, or before this clock was set back.
    await _execute(stack, "UPDATE outbox_claim_clock SET claimed_at = $1", now + dt.timedelta(days=1))

    await _send_hk(stack, "hk-801", PROXY, 2)
    rows, wait_s = await a._claim()
    assert _deliveries(rows) == 2 and wait_s is None


async def test_a_claim_takes_its_limit_of_rows_whatever_the_room_for_attempts(stack: Stack) -> None:
    # Rows become attempts grouped by receiver: the room for attempts does not cap the rows
    # (a claim held below its limit is never full, so each would be followed by a linger).
    now = await _without_own_claims(stack)
    [a] = _workers(stack, lambda: now, 1, claim_batch_max=4, in_flight_max=1)

    await _send_hk(stack, "hk-801", PROXY, 5)
    rows, _ = await a._claim()
    assert len(rows) == 4


async def test_a_deleted_claim_clock_is_put_back(stack: Stack) -> None:
    now = await _without_own_claims(stack)
    [a] = _workers(stack, lambda: now, 1)
    await _execute(stack, "DELETE FROM outbox_claim_clock")

    await _send_hk(stack, "hk-801", PROXY, 2)
    assert await a._claim() == ([], 0.0)  # nothing claimed without the clock; it is back
    rows, wait_s = await a._claim()
    assert _deliveries(rows) == 2 and wait_s is None
