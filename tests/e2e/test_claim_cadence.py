"""The delivery workers of every gateway process on one database share one claim cadence: a
claim within the linger of the last one that took rows, by any worker, takes nothing and
says when the next may go; after the linger one claim takes everything due, so that each
receiver's message carries the transfers of every process. A full claim holds nothing
back, and a claim time far ahead of a worker's clock does not stop it. The linger follows
the rate the last claim found rows at, and every worker keeps the linger that claim set."""

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


def _workers(stack: Stack, clock: Callable[[], dt.datetime], n: int, **config: float) -> list[DeliveryWorker]:
    """Workers with a linger of LINGER_S whatever the rate, unless `config` says otherwise."""
    own = stack.app[DELIVERY]
    config = {"claim_linger_s": LINGER_S, "claim_linger_max_s": LINGER_S, **config}
    return [
        DeliveryWorker(
            pool=own.pool, clearing=own.clearing, directory=own.directory, clock=clock,
            gateway_key=own.gateway_key, config=DeliveryConfig(**config),  # type: ignore[arg-type]
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


async def test_the_linger_follows_the_rate_the_last_claim_found_rows_at(stack: Stack) -> None:
    start = await _without_own_claims(stack)
    now = [start]
    # 0.1 s plus 0.4 s in proportion to the rate, the whole of it at 100 rows/s and above.
    a, b = _workers(stack, lambda: now[0], 2, claim_linger_max_s=0.5, claim_linger_max_rows_per_s=100)
    await _execute(stack, "UPDATE outbox_claim_clock SET claimed_at = $1", start - dt.timedelta(seconds=1))

    await _send_hk(stack, "hk-801", PROXY, 50)  # 50 rows in the second since the clock was set
    rows, _ = await a._claim()
    assert len(rows) == 50 and rows[0]["linger_s"] == pytest.approx(0.1 + 0.4 * 50 / 100)

    # Every worker keeps the linger the last claim set (b has claimed nothing yet).
    await _send_hk(stack, "hk-801", PROXY, 40)
    now[0] = start + dt.timedelta(seconds=0.2)
    assert await b._claim() == ([], pytest.approx(0.1))
    now[0] = start + dt.timedelta(seconds=0.3)
    rows, _ = await b._claim()  # 40 rows in 0.3 s: over the rate of the longest linger
    assert len(rows) == 40 and rows[0]["linger_s"] == pytest.approx(0.5)

    now[0] = start + dt.timedelta(seconds=0.7)
    assert await a._claim() == ([], pytest.approx(0.1))
    now[0] = start + dt.timedelta(seconds=10.8)
    await _send_hk(stack, "hk-801", PROXY, 1)
    rows, _ = await a._claim()  # 1 row in 10.5 s: back to the shortest linger
    assert len(rows) == 1 and rows[0]["linger_s"] == pytest.approx(0.1 + 0.4 * (1 / 10.5) / 100)


def test_lingers_are_checked() -> None:
    with pytest.raises(ValueError):
        DeliveryConfig(claim_linger_s=0.3, claim_linger_max_s=0.1)
    with pytest.raises(ValueError):
        DeliveryConfig(claim_linger_max_rows_per_s=0)


async def test_the_linger_counts_the_rows_of_full_claims_since_the_clock_was_set(stack: Stack) -> None:
    # A full claim leaves the clock; the claim after it takes only the rest. The rate is
    # that of every row taken since the clock was set, not of the last claim's alone.
    start = await _without_own_claims(stack)
    [a] = _workers(stack, lambda: start, 1, claim_batch_max=2, claim_linger_max_s=0.5,
                   claim_linger_max_rows_per_s=10)  # fmt: skip
    await _execute(stack, "UPDATE outbox_claim_clock SET claimed_at = $1", start - dt.timedelta(seconds=1))

    await _send_hk(stack, "hk-801", PROXY, 5)
    sizes = [len((await a._claim())[0]) for _ in range(2)]
    rows, _ = await a._claim()
    assert sizes == [2, 2] and len(rows) == 1
    assert rows[0]["linger_s"] == pytest.approx(0.1 + 0.4 * 5 / 10)  # 5 rows in 1 s
