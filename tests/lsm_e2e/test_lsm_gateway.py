"""Liquidity-saving mode in the running gateway, over real HTTP: queued transfers answer
PDNG, offsetting ones are released together and settle, the rest expire with AM04, a stale
release changes nothing, and with the flag off nothing is queued."""

from __future__ import annotations

import datetime as dt
import random

import aiohttp
import asyncpg

from adapters.registry import get_adapter
from clearing import lsm
from clearing.model import Proxy, ProxyType, TxStatus
from clearing.money import Money
from clearing.reasons import Reason
from gateway import api, wiring
from gateway import sim_messages as sm
from gateway.client import BaygateClient
from gateway.harness import Stack
from tests.waiting import wait_until

PROXY = {"hk-801": ("MOBN", "+852-91234567"), "hk-802": ("MOBN", "+852-62345678")}



async def _send(
    stack: Stack, sender_id: str, receiver_id: str, minor: int, priority: str = "normal"
) -> tuple[str, TxStatus, str]:
    """Send HKD `minor` from one Hong Kong bank to the other; (e2e id, status, gateway id)."""
    sender = sm.as_sender(stack.participant(sender_id))
    e2e = f"LSM{sender_id[-3:]}{random.randrange(10**9)}"
    ptype, pvalue = PROXY[receiver_id]
    payee = sm.Payee("?", "?", sender.agent, "CHAN Siu Ming", proxy=Proxy(ProxyType(ptype), pvalue))
    t = sm.make_transfer(
        sender,
        payee,
        random.Random(e2e),
        msg_id="M" + e2e,
        e2e=e2e,
        created_at=dt.datetime.now(dt.UTC),
        amount=Money(minor, "HKD"),
    ).evolve(priority=priority)
    body = sm.encode(sender.scheme, [t], t.msg_id, t.created_at)
    async with BaygateClient(stack.base_url, sender.id, stack.keys[sender.id]) as client:
        reply = await client.post_message(sender.scheme, body)
    assert reply.status == 200, reply.body[:500]
    [report] = get_adapter(sender.scheme).decode_status_reply(reply.body)
    return e2e, report.status, report.gateway_id


async def _fetch(stack: Stack, sql: str, *args):
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _operator_queue(stack: Stack) -> dict:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.base_url}/v1/operator/lsm/queue", headers=headers) as resp:
            assert resp.status == 200
            return await resp.json()


async def test_opposite_transfers_over_caps_queue_then_settle(saving_stack: Stack) -> None:
    stack = saving_stack
    # Each 500.00 alone is five times its payer's cap of 100.00; together they offset.
    a_e2e, a_status, a_id = await _send(stack, "hk-801", "hk-802", 50_000)
    b_e2e, b_status, b_id = await _send(stack, "hk-802", "hk-801", 50_000)
    assert (a_status, b_status) == (TxStatus.PDNG, TxStatus.PDNG)

    books = {p: stack.sims.book(p) for p in ("hk-801", "hk-802")}
    await wait_until(
        lambda: (
            books["hk-801"].final_status(a_e2e) is not None
            and books["hk-802"].final_status(b_e2e) is not None
        )
    )
    assert books["hk-801"].final_status(a_e2e) == (TxStatus.ACSC, None)
    assert books["hk-802"].final_status(b_e2e) == (TxStatus.ACSC, None)
    states = await _fetch(
        stack, "SELECT id, state FROM clearing_transfers WHERE id = ANY($1)", [a_id, b_id]
    )
    assert {r["state"] for r in states} == {"COMMITTED"}
    history = await _fetch(
        stack, "SELECT tx_status FROM transfer_events WHERE transfer_id = $1 ORDER BY id", a_id
    )
    assert [r[0] for r in history] == ["PDNG", "ACSP", "ACSC"]
    assert not await _fetch(stack, "SELECT 1 FROM lsm_queue")
    positions = await _fetch(
        stack,
        "SELECT participant_id, net, reserved FROM clearing_positions"
        " WHERE currency = 'HKD' AND participant_id = ANY($1)",
        ["hk-801", "hk-802"],
    )
    assert {(r["participant_id"], r["net"], r["reserved"]) for r in positions} == {
        ("hk-801", 0, 0),
        ("hk-802", 0, 0),
    }


async def test_a_pacs_high_priority_transfer_queues_as_urgent(saving_stack: Stack) -> None:
    await saving_stack.app[wiring.LSM].stop()
    _, _, normal = await _send(saving_stack, "hk-801", "hk-802", 50_000)
    _, _, urgent = await _send(saving_stack, "hk-801", "hk-802", 40_000, priority="urgent")
    rows = await _fetch(saving_stack, "SELECT transfer_id, priority FROM lsm_queue")
    assert {r[0]: r[1] for r in rows} == {normal: "normal", urgent: "urgent"}


async def test_a_lone_queued_transfer_expires_with_am04(saving_stack: Stack) -> None:
    stack = saving_stack
    stack.app[api.GATEWAY].accept.queue_ttl_s = 0.5
    e2e, status, tid = await _send(stack, "hk-801", "hk-802", 50_000)
    assert status == TxStatus.PDNG
    book = stack.sims.book("hk-801")
    await wait_until(lambda: book.final_status(e2e) is not None)
    assert book.final_status(e2e) == (TxStatus.RJCT, Reason.AM04)
    [row] = await _fetch(stack, "SELECT state, tx_status, reason FROM transfers WHERE id = $1", tid)
    assert tuple(row) == ("REJECTED", "RJCT", "AM04")
    assert not await _fetch(stack, "SELECT 1 FROM clearing_transfers WHERE id = $1", tid)
    assert not await _fetch(stack, "SELECT 1 FROM lsm_queue")


async def test_with_the_flag_off_over_cap_is_rejected_at_once(plain_stack: Stack) -> None:
    stack = plain_stack
    _, a_status, _ = await _send(stack, "hk-801", "hk-802", 50_000)
    _, b_status, _ = await _send(stack, "hk-802", "hk-801", 50_000)
    assert (a_status, b_status) == (TxStatus.RJCT, TxStatus.RJCT)
    assert not await _fetch(stack, "SELECT 1 FROM lsm_queue")
    assert not await _fetch(stack, "SELECT 1 FROM transfers WHERE state = 'QUEUED'")


async def test_a_stale_release_is_discarded_whole_then_recomputed(saving_stack: Stack) -> None:
    stack = saving_stack
    runner = stack.app[wiring.LSM]
    await runner.stop()  # drive the runner's steps by hand
    # 500.00 against 450.00: hk-801 ends 50.00 down, within its cap of 100.00.
    _, _, a_id = await _send(stack, "hk-801", "hk-802", 50_000)
    _, _, b_id = await _send(stack, "hk-802", "hk-801", 45_000)
    view = await _operator_queue(stack)
    assert view["queue"] == [
        {
            "participant_id": "hk-801",
            "currency": "HKD",
            "depth": 1,
            "value": "500.00",
            "value_minor": 50_000,
            "oldest_queued_at": view["queue"][0]["oldest_queued_at"],
        },
        {
            "participant_id": "hk-802",
            "currency": "HKD",
            "depth": 1,
            "value": "450.00",
            "value_minor": 45_000,
            "oldest_queued_at": view["queue"][1]["oldest_queued_at"],
        },
    ]
    assert view["totals"] == [
        {"currency": "HKD", "depth": 2, "value": "950.00", "value_minor": 95_000}
    ]
    snap = await runner.store.snapshot("HKD")
    res = lsm.resolve([e.transfer for e in snap.entries], snap.balances)
    assert set(res.released) == {a_id, b_id}

    gw = stack.app[api.GATEWAY]
    await gw.clearing.set_limits("hk-801", "HKD", 1_000, 1_000)  # the cap drops to 10.00
    by_id = {e.transfer.id: e for e in snap.entries}
    result = await runner.store.apply([by_id[i] for i in res.released], res.released_by)
    assert not result.applied
    assert [p.participant for p in result.problems] == ["hk-801"]
    assert len(await _fetch(stack, "SELECT 1 FROM lsm_queue")) == 2
    assert not await _fetch(
        stack, "SELECT 1 FROM clearing_transfers WHERE id = ANY($1)", [a_id, b_id]
    )
    states = await _fetch(stack, "SELECT state FROM transfers WHERE id = ANY($1)", [a_id, b_id])
    assert [r[0] for r in states] == ["QUEUED", "QUEUED"]
    reserved = await _fetch(
        stack, "SELECT sum(reserved) FROM clearing_positions WHERE currency = 'HKD'"
    )
    assert reserved[0][0] == 0

    # Recomputed on fresh data: nothing fits under 10.00; with the cap back, both go.
    assert (await runner.run_once()).released == {}
    await gw.clearing.set_limits("hk-801", "HKD", 10_000, 10_000)
    report = await runner.run_once()
    assert report.released == {"HKD": 2} and report.released_minor == {"HKD": 95_000}
    states = await _fetch(
        stack, "SELECT state FROM clearing_transfers WHERE id = ANY($1)", [a_id, b_id]
    )
    assert len(states) == 2
