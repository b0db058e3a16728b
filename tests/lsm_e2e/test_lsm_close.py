"""Liquidity-saving mode around window close and liquidity changes, in the running gateway:
the exact pass on what is still queued runs before a close takes its totals, queued
transfers never wait past the next scheduled close, an operator raising a cap wakes the
resolver, and the BAYGATE_LSM_* settings reach the queue and the runner."""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest

from gateway import api, wiring
from gateway.config import ConfigError, load_settings
from gateway.harness import Stack
from tests.waiting import wait_until

from .test_lsm_gateway import _fetch, _send


async def _operator(stack: Stack, method: str, path: str, body: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, f"{stack.base_url}{path}", json=body, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def _states(stack: Stack, ids: list[str]) -> dict[str, str]:
    rows = await _fetch(stack, "SELECT id, state FROM transfers WHERE id = ANY($1)", ids)
    return {r["id"]: r["state"] for r in rows}


async def test_window_close_runs_the_exact_pass_on_what_is_still_queued(
    saving_stack: Stack,
) -> None:
    stack = saving_stack
    runner = stack.app[wiring.LSM]
    await runner.stop()  # only the close may release anything
    gw = stack.app[api.GATEWAY]
    await gw.clearing.set_limits("hk-801", "HKD", 0, 0)
    # Queued in this order: 60.00, 50.00, 50.00. Under a cap of 100.00 the fast passes keep
    # queue order and release 60.00; the integer program finds 50.00 + 50.00.
    ids = [(await _send(stack, "hk-801", "hk-802", m))[2] for m in (6_000, 5_000, 5_000)]
    await gw.clearing.set_limits("hk-801", "HKD", 10_000, 10_000)
    assert set((await _states(stack, ids)).values()) == {"QUEUED"}

    close = await _operator(stack, "POST", "/v1/operator/windows/close")

    states = await _states(stack, ids)
    assert states[ids[0]] == "QUEUED"
    assert states[ids[1]] != "QUEUED" and states[ids[2]] != "QUEUED"
    [q] = await _fetch(stack, "SELECT transfer_id FROM lsm_queue")
    assert q[0] == ids[0]
    released_at = await _fetch(
        stack,
        "SELECT at FROM transfer_events WHERE transfer_id = ANY($1) AND state = 'RESERVED'",
        ids[1:],
    )
    closed_at = dt.datetime.fromisoformat(close["closed_at"])
    assert len(released_at) == 2 and all(r[0] <= closed_at for r in released_at)


async def test_window_close_leaves_the_queue_alone_when_the_exact_pass_is_off(
    saving_stack_with,
) -> None:
    async with saving_stack_with(lsm_exact_at_close=False) as stack:
        runner = stack.app[wiring.LSM]
        await runner.stop()
        _, _, a_id = await _send(stack, "hk-801", "hk-802", 50_000)
        _, _, b_id = await _send(stack, "hk-802", "hk-801", 50_000)
        await _operator(stack, "POST", "/v1/operator/windows/close")
        assert set((await _states(stack, [a_id, b_id])).values()) == {"QUEUED"}


async def test_queued_transfers_expire_at_the_next_scheduled_close_at_the_latest(
    saving_stack_with,
) -> None:
    async with saving_stack_with(window_close_interval_s=3600, lsm_queue_ttl_s=7200) as stack:
        gw = stack.app[api.GATEWAY]
        _, opened_at = await gw.clearing.open_window()
        _, status, tid = await _send(stack, "hk-801", "hk-802", 50_000)
        assert status == "PDNG"
        [row] = await _fetch(stack, "SELECT expires_at FROM lsm_queue WHERE transfer_id = $1", tid)
        assert row[0] == opened_at + dt.timedelta(seconds=3600)

        # After a close (here by hand), the next window's scheduled close is the limit.
        close = await _operator(stack, "POST", "/v1/operator/windows/close")
        closed_at = dt.datetime.fromisoformat(close["closed_at"])
        _, _, later = await _send(stack, "hk-801", "hk-802", 40_000)
        [row] = await _fetch(
            stack, "SELECT expires_at FROM lsm_queue WHERE transfer_id = $1", later
        )
        assert row[0] == closed_at + dt.timedelta(seconds=3600)


async def test_without_a_schedule_queued_transfers_wait_their_time_limit(
    saving_stack_with,
) -> None:
    async with saving_stack_with(lsm_queue_ttl_s=123) as stack:
        _, _, tid = await _send(stack, "hk-801", "hk-802", 50_000)
        [row] = await _fetch(
            stack, "SELECT expires_at - queued_at FROM lsm_queue WHERE transfer_id = $1", tid
        )
        assert row[0] == dt.timedelta(seconds=123)


async def test_an_operator_raising_a_cap_wakes_the_resolver(saving_stack: Stack) -> None:
    stack = saving_stack
    runner = stack.app[wiring.LSM]
    await runner.stop()
    e2e, status, _ = await _send(stack, "hk-801", "hk-802", 50_000)
    assert status == "PDNG"
    runner.interval_s = 3600.0  # no tick during the test: only a wake runs the resolver
    before = runner.runs
    runner.start()
    await wait_until(lambda: runner.runs > before)  # the first run finds nothing that fits
    book = stack.sims.book("hk-801")
    assert book.final_status(e2e) is None

    await _operator(
        stack, "PUT", "/v1/operator/limits/hk-801/HKD",
        {"net_debit_cap": "1000.00", "liquidity_cover": "1000.00"},
    )  # fmt: skip
    await wait_until(lambda: book.final_status(e2e) is not None)
    assert book.final_status(e2e)[0] == "ACSC"


async def test_a_confirmed_settlement_wakes_the_resolver(saving_stack: Stack) -> None:
    """Settling a window takes the settled nets off the positions: a transfer queued for lack
    of headroom then fits, and the confirmation itself wakes the resolver (no tick runs)."""
    stack = saving_stack
    runner = stack.app[wiring.LSM]
    gw = stack.app[api.GATEWAY]
    await gw.clearing.set_limits("hk-801", "HKD", 100_000, 100_000)  # 1,000.00
    first, status, _ = await _send(stack, "hk-801", "hk-802", 80_000)
    assert status == "ACSP"
    book = stack.sims.book("hk-801")
    await wait_until(lambda: book.final_status(first) is not None)
    assert book.final_status(first)[0] == "ACSC"  # hk-801 now owes 800.00

    await runner.stop()
    queued, status, _ = await _send(stack, "hk-801", "hk-802", 50_000)
    assert status == "PDNG"  # 800.00 + 500.00 is over the cap
    runner.interval_s = 3600.0  # no tick during the test: only a wake runs the resolver
    before = runner.runs
    runner.start()
    await wait_until(lambda: runner.runs > before)
    close = await _operator(stack, "POST", "/v1/operator/windows/close")
    assert book.final_status(queued) is None  # still queued after the close

    lines = await _fetch(
        stack,
        "SELECT participant_id, currency FROM clearing_settlement_lines"
        " WHERE settlement_id = $1 AND net <> 0",
        close["settlement_id"],
    )
    for i, (pid, ccy) in enumerate(lines):
        view = await _operator(
            stack, "POST", f"/v1/operator/settlements/{close['settlement_id']}/confirm",
            {"participant_id": pid, "currency": ccy, "reference": f"RTGS{i:05d}"},
        )  # fmt: skip
    assert view["state"] == "SETTLED"
    await wait_until(lambda: book.final_status(queued) is not None)
    assert book.final_status(queued)[0] == "ACSC"


async def test_lsm_settings_reach_the_queue_and_the_runner(saving_stack_with) -> None:
    overrides = dict(
        lsm_queue_ttl_s=42, lsm_resolve_interval_ms=250, lsm_snapshot_max=500,
        lsm_exact_at_close=False, lsm_exact_time_limit_s=1.5,
    )  # fmt: skip
    async with saving_stack_with(**overrides) as stack:
        runner = stack.app[wiring.LSM]
        assert stack.app[api.GATEWAY].accept.queue_ttl_s == 42
        assert (runner.interval_s, runner.store.snapshot_max) == (0.25, 500)
        assert (runner.exact_at_close, runner.exact_time_limit_s) == (False, 1.5)


def test_lsm_settings_come_from_the_environment_and_are_bounded(monkeypatch) -> None:
    monkeypatch.setenv("BAYGATE_LSM_QUEUE_TTL_S", "30")
    monkeypatch.setenv("BAYGATE_LSM_EXACT_AT_CLOSE", "false")
    s = load_settings()
    assert (s.lsm_queue_ttl_s, s.lsm_exact_at_close) == (30, False)
    assert (s.lsm_resolve_interval_ms, s.lsm_snapshot_max, s.lsm_exact_time_limit_s) == (
        500, 8_000, 5.0,
    )  # fmt: skip
    monkeypatch.setenv("BAYGATE_LSM_SNAPSHOT_MAX", "9000")
    with pytest.raises(ConfigError, match="BAYGATE_LSM_SNAPSHOT_MAX"):
        load_settings()
