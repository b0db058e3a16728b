"""End to end over real HTTP: a provider's native message reaches the receiving provider in
its own scheme and currency, the sender learns ACSC, and positions and the ledger show it."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import pytest

from adapters.registry import get_adapter
from clearing.model import Party, PartyId, PartyIdType, Proxy, ProxyType, TxStatus
from clearing.money import Money
from gateway import sim_messages as sm
from gateway.client import BaygateClient
from gateway.harness import Stack
from tests.waiting import wait_until


def _transfer(stack: Stack, sender_id: str, proxy: tuple[str, str], amount: Money, e2e: str):
    sender = sm.as_sender(stack.participant(sender_id))
    rng = random.Random(e2e)
    payee = sm.Payee("?", "?", sender.agent, "李伟", proxy=Proxy(ProxyType(proxy[0]), proxy[1]))
    t = sm.make_transfer(sender, payee, rng, msg_id="M" + e2e, e2e=e2e,
                         created_at=dt.datetime.now(dt.UTC), amount=amount)
    if sender.scheme == "hk-fps":
        t = t.evolve(debtor=Party("CHAN Tai Man", PartyId(PartyIdType.HKID, "A1234563")))
    return sender, t


@pytest.mark.parametrize(
    ("sender_id", "proxy", "amount", "receiver_id", "dst_ccy"),
    [
        ("hk-801", ("MOBN", "+86-13800138000"), Money(100000, "HKD"), "cn-pearl", "CNY"),
        ("mo-301", ("MOBN", "+86-13912345678"), Money(50000, "MOP"), "cn-lingnan", "CNY"),
        ("cn-pearl", ("MOBN", "+853-66123456"), Money(30000, "CNY"), "mo-301", "MOP"),
        ("mo-302", ("MOBN", "+852-91234567"), Money(70000, "MOP"), "hk-801", "HKD"),
        ("hk-802", ("MOBN", "+853-62876543"), Money(40000, "HKD"), "mo-302", "HKD"),
    ],
)
async def test_cross_border_transfer_settles(stack: Stack, sender_id, proxy, amount, receiver_id, dst_ccy) -> None:
    sender, t = _transfer(stack, sender_id, proxy, amount, f"E2E{sender_id[:2].upper()}{random.randrange(10**8)}")
    if sender.scheme == "cn-ibps":  # IBPS messages always name the creditor agent
        t = t.evolve(creditor_agent=sm.as_sender(stack.participant(receiver_id)).agent)
    body = sm.encode(sender.scheme, [t], t.msg_id, t.created_at)
    async with BaygateClient(stack.base_url, sender.id, stack.keys[sender.id]) as client:
        reply = await client.post_message(sender.scheme, body)
    assert reply.status == 200, reply.body[:500]
    [report] = get_adapter(sender.scheme).decode_status_reply(reply.body)
    assert report.status == TxStatus.ACSP, report
    gateway_id = report.gateway_id
    assert gateway_id

    receiver_book = stack.sims.book(receiver_id)
    sender_book = stack.sims.book(sender_id)
    await wait_until(lambda: sender_book.final_status(t.end_to_end_id) is not None)
    assert sender_book.final_status(t.end_to_end_id) == (TxStatus.ACSC, None)
    # The receiver got the transfer in its own scheme and currency.
    received = [a for a in receiver_book.applied.values() if a.end_to_end_id == t.end_to_end_id]
    assert len(received) == 1
    assert receiver_book.reversed == 0  # committed: no expiry notice
    assert received[0].amount.currency == dst_ccy
    if dst_ccy != amount.currency:
        assert received[0].amount.minor > 0

    async with BaygateClient(stack.base_url, sender.id, stack.keys[sender.id]) as client:
        detail = await client.get_json(f"/v1/transfers/{gateway_id}")
        positions = await client.get_json("/v1/positions")
    assert detail.status == 200 and detail.body["status"] == "ACSC"
    assert [h["status"] for h in detail.body["history"]][-1] == "ACSC"
    if detail.body["creditor_amount"] is not None:  # the receiver got the quoted amount
        assert received[0].amount == Money.parse(detail.body["creditor_amount"], dst_ccy)
    conn = await asyncpg.connect(stack.dsn)
    try:
        entries = await conn.fetch(
            "SELECT participant_id, currency, amount FROM clearing_ledger_entries WHERE journal_id = $1",
            gateway_id,
        )
    finally:
        await conn.close()
    by_ccy: dict[str, int] = {}
    for e in entries:
        by_ccy[e["currency"]] = by_ccy.get(e["currency"], 0) + e["amount"]
    assert entries and all(v == 0 for v in by_ccy.values())  # balanced in every currency
    assert {(e["participant_id"], e["amount"]) for e in entries if e["currency"] == amount.currency} >= {
        (sender_id, amount.minor)
    }
    mine = {p["currency"]: p for p in positions.body["positions"]}
    assert Money.parse(mine[amount.currency]["net"], amount.currency, allow_negative=True).minor == amount.minor
    assert Money.parse(mine[amount.currency]["reserved"], amount.currency).minor == 0
