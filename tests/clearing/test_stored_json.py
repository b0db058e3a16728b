"""The stored JSON of a transfer reuses the encoding hashed for idempotency: what PostgreSQL
(and `json.loads`) read back from it must be the routed transfer, whatever routing changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.model import Account, Agent, Party, Proxy, ProxyType, Transfer
from clearing.money import Money
from gateway import transfer_json
from tests.adapters.helpers import accounts, agents, transfers


@st.composite
def sent_and_routed(draw: st.DrawFn) -> tuple[Transfer, Transfer]:
    sent = draw(transfers(draw(st.sampled_from(["hk-fps", "cn-ibps", "mo-fps"]))))
    agent = draw(agents())
    routed = sent.evolve(
        id=draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        destination_scheme=draw(st.sampled_from(["hk-fps", "cn-ibps", "mo-fps"])),
        creditor_account=draw(accounts(agent)),
        creditor_agent=agent,
    )
    if draw(st.booleans()):  # converted: the creditor amount, quote and rate are set
        routed = routed.evolve(
            creditor_amount=Money(draw(st.integers(1, 10**13)), "CNY"),
            quote_id=draw(st.text("0123456789abcdef", min_size=1, max_size=32)),
            exchange_rate=draw(st.from_regex(r"\A[1-9][0-9]{0,3}\.[0-9]{1,6}\Z")),
        )
    return sent, routed


@settings(max_examples=300, deadline=None)
@given(sent_and_routed())
def test_stored_json_reads_back_as_the_routed_transfer(pair: tuple[Transfer, Transfer]) -> None:
    sent, routed = pair
    hashed, digest = transfer_json.payload(sent)
    stored = transfer_json.stored_json(hashed, routed)
    assert json.loads(stored) == transfer_json.to_dict(routed)
    assert transfer_json.from_dict(json.loads(stored)) == routed
    # The hash is still that of the transfer as sent, whatever routing did.
    assert (
        digest
        == transfer_json.payload_sha256(sent)
        == transfer_json.payload_sha256(
            routed.evolve(
                creditor_account=sent.creditor_account,
                creditor_agent=sent.creditor_agent,
                creditor_amount=sent.creditor_amount,
                quote_id=sent.quote_id,
                exchange_rate=sent.exchange_rate,
            )
        )
    )


async def test_postgresql_keeps_the_routed_values_of_repeated_keys(db_pool) -> None:
    sent = Transfer(
        msg_id="M1",
        end_to_end_id="E1",
        source_scheme="hk-fps",
        amount=Money(12_345, "HKD"),
        debtor=Party("陳大文"),
        debtor_account=Account("01287500123456"),
        debtor_agent=Agent("HKNCC", "012", None),
        creditor=Party("李小梅"),
        creditor_account=Account(None, Proxy(ProxyType.MOBILE, "+86-13800000001")),
        creditor_agent=None,
        created_at=datetime(2025, 6, 22, 1, 30, tzinfo=UTC),
    )
    routed = sent.evolve(
        id="f" * 32,
        destination_scheme="cn-ibps",
        creditor_account=Account("6222020200000000001", None),
        creditor_agent=Agent("CNAPS", "104584000003", "Bank"),
        creditor_amount=Money(11_000, "CNY"),
        quote_id="q1",
        exchange_rate="0.9100",
    )
    stored = transfer_json.stored_json(transfer_json.payload(sent)[0], routed)
    async with db_pool.acquire() as conn:
        back = await conn.fetchval("SELECT $1::text::jsonb::text", stored)
    assert json.loads(back) == transfer_json.to_dict(routed)
