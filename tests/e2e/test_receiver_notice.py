"""A receiver that accepted a transfer the gateway could not commit in time is told so.

The receiving simulators answer slower than the transfer's timeout: each records its decision
and credits the payee at once, then answers too late. The gateway expires the transfer (the
sender gets RJCT AB05) and sends the receiver a notice naming the delivered message, on which
the receiver reverses its credit: no credit is left unfunded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from adapters.registry import get_adapter
from clearing.model import Party, PartyId, PartyIdType, Proxy, ProxyType, TxStatus
from clearing.money import Money
from clearing.reasons import Reason
from gateway import sim_messages as sm
from gateway.client import BaygateClient
from gateway.config import load_settings
from gateway.harness import Stack, running_stack
from gateway.sim_state import SimRules
from tests.waiting import wait_until

SLOW = SimRules(delay_ms=10_000)  # longer than the transfer's timeout below


@pytest.fixture
async def slow_stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, transfer_timeout_s=5)
    rules = {"hk-fps": SLOW, "cn-ibps": SLOW, "mo-fps": SLOW}
    async with running_stack(settings, rules=rules) as s:
        yield s



@pytest.mark.parametrize(
    ("sender_id", "proxy", "amount", "receiver_id"),
    [
        ("hk-801", ("MOBN", "+86-13800138000"), Money(100000, "HKD"), "cn-pearl"),
        ("cn-pearl", ("MOBN", "+853-66123456"), Money(30000, "CNY"), "mo-301"),
        ("mo-302", ("MOBN", "+852-91234567"), Money(70000, "MOP"), "hk-801"),
    ],
)
async def test_receiver_reverses_a_credit_the_gateway_expired(
    slow_stack: Stack, sender_id: str, proxy: tuple[str, str], amount: Money, receiver_id: str
) -> None:
    stack = slow_stack
    e2e = f"LATE{sender_id[:2].upper()}{random.randrange(10**8)}"
    sender = sm.as_sender(stack.participant(sender_id))
    payee = sm.Payee("?", "?", sender.agent, "李伟", proxy=Proxy(ProxyType(proxy[0]), proxy[1]))
    t = sm.make_transfer(sender, payee, random.Random(e2e), msg_id="M" + e2e, e2e=e2e,
                         created_at=dt.datetime.now(dt.UTC), amount=amount)  # fmt: skip
    if sender.scheme == "hk-fps":
        t = t.evolve(debtor=Party("CHAN Tai Man", PartyId(PartyIdType.HKID, "A1234563")))
    if sender.scheme == "cn-ibps":
        t = t.evolve(creditor_agent=sm.as_sender(stack.participant(receiver_id)).agent)
    body = sm.encode(sender.scheme, [t], t.msg_id, t.created_at)
    async with BaygateClient(stack.base_url, sender.id, stack.keys[sender.id]) as client:
        reply = await client.post_message(sender.scheme, body)
    [report] = get_adapter(sender.scheme).decode_status_reply(reply.body)
    assert report.status == TxStatus.ACSP, report

    receiver, sender_book = stack.sims.book(receiver_id), stack.sims.book(sender_id)
    # The receiver applied the credit on delivery, before answering (too late).
    await wait_until(lambda: any(a.end_to_end_id == e2e for a in receiver.applied.values()), timeout_s=30)
    await wait_until(lambda: sender_book.final_status(e2e) is not None, timeout_s=30)
    assert sender_book.final_status(e2e) == (TxStatus.RJCT, Reason.AB05)
    await wait_until(lambda: receiver.reversed == 1, timeout_s=30)
    assert not any(a.end_to_end_id == e2e for a in receiver.applied.values())
    assert receiver.credited_minor == {}

    conn = await asyncpg.connect(stack.dsn)
    try:
        state = await conn.fetchval("SELECT state FROM clearing_transfers WHERE id = $1", report.gateway_id)
        # The receiver has reversed; the gateway marks the notice done once it has the answer.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            notice = await conn.fetchrow(
                "SELECT attempts, done_at FROM outbox WHERE transfer_id = $1 AND kind = 'notice'",
                report.gateway_id,
            )
            if notice is None or notice["done_at"] is not None:
                break
            assert asyncio.get_running_loop().time() < deadline, "notice never marked done"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert state == "EXPIRED"
    assert notice is not None and notice["done_at"] is not None
