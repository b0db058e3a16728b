"""The provider simulator as the gateway sees it: signed deliveries in, native answers out."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import StatusReport
from adapters.cn_ibps import envelope
from adapters.registry import get_adapter
from clearing.model import TxStatus
from clearing.money import Money
from clearing.reasons import Reason
from gateway.auth import load_private_key, sign_request
from gateway.sim_state import CLOSED_ACCOUNT_PREFIX, UNKNOWN_ACCOUNT_PREFIX, SimRules
from gateway.simulator import plan_ports, run_simulators

from .support import (
    DIRECTORY,
    GATEWAY_KEY,
    KEYS_DIR,
    WHEN,
    agent_of,
    delivery,
    encode_delivery,
    started,
)


def answers(scheme: str, body: bytes) -> list[StatusReport]:
    return get_adapter(scheme).decode_status_reply(body)


async def test_unsigned_delivery_is_refused_and_nothing_is_applied() -> None:
    async with started("hk-fps") as (state, gw):
        body = encode_delivery(delivery("hk-801"))
        reply = await gw.post("/providers/hk-801/transfers", body, sign=False)
        assert reply.status == 401
        assert state.books["hk-801"].deliveries == 0
        assert state.books["hk-801"].credited_minor == {}


async def test_delivery_signed_by_another_key_is_refused() -> None:
    async with started("hk-fps") as (state, gw):
        gw.key = load_private_key(KEYS_DIR / "hk-802.pem")  # a participant, not the gateway
        reply = await gw.deliver("hk-801", delivery("hk-801"))
        assert reply.status == 401
        gw.key_id = "hk-802"
        reply = await gw.deliver("hk-801", delivery("hk-801", e2e="E2E-0002"))
        assert reply.status == 401
        assert state.books["hk-801"].distinct == 0


async def test_replayed_signed_request_is_refused() -> None:
    async with started("hk-fps") as (_state, gw):
        body = encode_delivery(delivery("hk-801"))
        first = await gw.post("/providers/hk-801/transfers", body)
        again = await gw.post("/providers/hk-801/transfers", body, tick=False)
        assert (first.status, again.status) == (200, 401)


async def test_pacs008_delivery_is_accepted_in_pacs002_and_credited() -> None:
    async with started("hk-fps") as (state, gw):
        t = delivery("hk-801", amount=Money(50_000, "CNY"))
        reply = await gw.deliver("hk-801", t, msg_id="GWMSG0042")
        assert reply.status == 200
        [report] = answers("hk-fps", reply.body)
        assert (report.status, report.reason) == (TxStatus.ACSP, None)
        assert report.original_end_to_end_id == t.end_to_end_id
        assert report.original_msg_id == "GWMSG0042"
        assert state.books["hk-801"].credited_minor == {"CNY": 50_000}
        assert state.books["hk-802"].credited_minor == {}


async def test_ibps101_delivery_is_answered_in_ibps102() -> None:
    async with started("cn-ibps") as (state, gw):
        t = delivery("cn-lingnan", sender="hk-801", amount=Money(88_800, "CNY"))
        reply = await gw.deliver("cn-lingnan", t)
        assert reply.status == 200
        [report] = answers("cn-ibps", reply.body)
        assert report.status is TxStatus.ACSP
        assert report.original_end_to_end_id == t.end_to_end_id
        assert envelope.split(reply.body, len(reply.body)).header.sender == "403584000026"
        assert state.books["cn-lingnan"].credited_minor == {"CNY": 88_800}


async def test_converted_amount_is_what_the_creditor_agent_is_credited() -> None:
    async with started("mo-fps") as (state, gw):
        t = delivery(
            "mo-301",
            sender="cn-pearl",
            account="301000123456",
            amount=Money(10_000, "CNY"),
            creditor_amount=Money(11_120, "MOP"),
        )
        reply = await gw.deliver("mo-301", t)
        assert [r.status for r in answers("mo-fps", reply.body)] == [TxStatus.ACSP]
        assert state.books["mo-301"].credited_minor == {"MOP": 11_120}


async def test_account_rules_reject_with_their_reasons() -> None:
    rules = SimRules(unknown_accounts=frozenset({"802000000404"}))
    async with started("hk-fps", rules) as (state, gw):
        cases = {
            "E-UNKNOWN-PREFIX": (UNKNOWN_ACCOUNT_PREFIX + "123456789", Reason.AC01),
            "E-UNKNOWN-LISTED": ("802000000404", Reason.AC01),
            "E-CLOSED": (CLOSED_ACCOUNT_PREFIX + "123456789", Reason.AC04),
        }
        for e2e, (account, reason) in cases.items():
            reply = await gw.deliver("hk-802", delivery("hk-802", e2e=e2e, account=account))
            [report] = answers("hk-fps", reply.body)
            assert (report.status, report.reason) == (TxStatus.RJCT, reason), e2e
        assert state.books["hk-802"].credited_minor == {}
        assert state.books["hk-802"].distinct == 3


async def test_each_transaction_is_answered_and_an_unreadable_one_is_not_applied() -> None:
    adapter = get_adapter("hk-fps")
    good = delivery("hk-801", e2e="E-GOOD", amount=Money(4_200, "HKD"))
    bad = delivery("hk-801", e2e="E-BAD", account="12")  # too short for a Hong Kong account
    body = adapter.encode_transfers([good, bad], msg_id="GWMSG0007", created_at=WHEN)
    async with started("hk-fps") as (state, gw):
        reply = await gw.post("/providers/hk-801/transfers", body)
        got = {
            r.original_end_to_end_id: (r.status, r.reason) for r in answers("hk-fps", reply.body)
        }
        assert got == {"E-GOOD": (TxStatus.ACSP, None), "E-BAD": (TxStatus.RJCT, Reason.AC01)}
        book = state.books["hk-801"]
        assert (book.transactions, book.distinct) == (2, 1)
        assert book.credited_minor == {"HKD": 4_200}


async def test_transfer_for_another_provider_is_rejected_rc10() -> None:
    async with started("hk-fps") as (state, gw):
        t = delivery("hk-801", creditor_agent=agent_of("hk-802"))
        reply = await gw.post("/providers/hk-801/transfers", encode_delivery(t))
        [report] = answers("hk-fps", reply.body)
        assert (report.status, report.reason) == (TxStatus.RJCT, Reason.RC10)
        assert state.books["hk-801"].credited_minor == {}


async def test_reject_ratio_one_rejects_everything_with_the_configured_reason() -> None:
    rules = SimRules(reject_ratio=1.0, reject_reason=Reason.BE01)
    async with started("hk-fps", rules) as (state, gw):
        for i in range(3):
            reply = await gw.deliver("hk-803", delivery("hk-803", e2e=f"E-{i}"))
            [report] = answers("hk-fps", reply.body)
            assert (report.status, report.reason) == (TxStatus.RJCT, Reason.BE01)
        assert state.books["hk-803"].credited_minor == {}


async def test_redeliveries_get_the_first_answer_and_are_applied_once() -> None:
    async with started("hk-fps") as (state, gw):
        t = delivery("hk-801", amount=Money(70_000, "HKD"))
        replies = [await gw.deliver("hk-801", t, msg_id=f"GWMSG{i:04d}") for i in range(3)]
        statuses = [[r.status for r in answers("hk-fps", x.body)] for x in replies]
        assert statuses == [[TxStatus.ACSP]] * 3
        book = state.books["hk-801"]
        assert (book.distinct, book.duplicates, book.deliveries) == (1, 2, 3)
        assert book.credited_minor == {"HKD": 70_000}


async def test_same_end_to_end_id_from_two_debtor_agents_are_two_transfers() -> None:
    async with started("hk-fps") as (state, gw):
        await gw.deliver("hk-801", delivery("hk-801", sender="cn-pearl"))
        await gw.deliver("hk-801", delivery("hk-801", sender="cn-nansha"))
        assert state.books["hk-801"].credited_minor == {"CNY": 2 * 12_345}


async def test_gateway_id_when_carried_is_the_deduplication_key() -> None:
    async with started("hk-fps") as (state, gw):
        for gateway_id in ("GW-A", "GW-B", "GW-A"):
            t = delivery("hk-801", amount=Money(1_000, "HKD"), gateway_id=gateway_id)
            reply = await gw.deliver("hk-801", t)
            [report] = answers("hk-fps", reply.body)
            assert report.gateway_id == gateway_id
        book = state.books["hk-801"]
        assert (book.distinct, book.duplicates) == (2, 1)
        assert book.credited_minor == {"HKD": 2_000}


async def test_http_500_applies_nothing_and_a_lost_answer_applies_once() -> None:
    async with started("hk-fps", SimRules(http_500_ratio=1.0)) as (state, gw):
        reply = await gw.deliver("hk-801", delivery("hk-801"))
        assert reply.status == 500
        assert state.books["hk-801"].credited_minor == {}
    async with started("hk-fps", SimRules(lost_answer_ratio=1.0)) as (state, gw):
        t = delivery("hk-801")
        replies = [await gw.deliver("hk-801", t) for _ in range(2)]
        assert [r.status for r in replies] == [500, 500]
        book = state.books["hk-801"]
        assert (book.lost_answers, book.duplicates) == (2, 1)
        assert book.credited_minor == {"CNY": 12_345}


async def test_silent_participant_holds_then_gives_no_answer() -> None:
    rules = SimRules(silent_participants=frozenset({"hk-803"}), silent_hold_s_max=0.01)
    async with started("hk-fps", rules) as (state, gw):
        silent = await gw.deliver("hk-803", delivery("hk-803"))
        other = await gw.deliver("hk-802", delivery("hk-802"))
        assert (silent.status, other.status) == (503, 200)
        assert state.books["hk-803"].held == 1
        assert state.books["hk-803"].credited_minor == {}


async def test_unknown_participant_and_undecodable_body() -> None:
    async with started("hk-fps") as (state, gw):
        missing = await gw.post("/providers/hk-999/transfers", encode_delivery(delivery("hk-801")))
        junk = await gw.post("/providers/hk-801/transfers", b"<not-a-pacs008/>")
        assert (missing.status, junk.status) == (404, 400)
        assert state.books["hk-801"].malformed == 1


async def test_status_callback_is_recorded_per_sender_transfer() -> None:
    adapter = get_adapter("hk-fps")
    async with started("hk-fps") as (state, gw):
        reports = [
            StatusReport("M1", "E-SENT-1", "T1", TxStatus.RJCT, Reason.AC01, "no such account"),
            StatusReport("M1", "E-SENT-2", "T2", TxStatus.ACSC),
        ]
        body = adapter.encode_status_report(
            reports, msg_id="GW-STS-1", created_at=WHEN, original_msg_id="M1"
        )
        reply = await gw.post("/providers/hk-801/status", body)
        unsigned = await gw.post("/providers/hk-801/status", body, sign=False)
        assert (reply.status, unsigned.status) == (200, 401)
        book = state.books["hk-801"]
        assert book.final_status("E-SENT-1") == (TxStatus.RJCT, Reason.AC01)
        assert book.final_status("E-SENT-2") == (TxStatus.ACSC, None)
        assert book.final_status("E-NEVER") is None


async def test_failing_callback_endpoint_records_nothing() -> None:
    adapter = get_adapter("mo-fps")
    report = StatusReport("M1", "E-SENT-1", "T1", TxStatus.ACSC)
    body = adapter.encode_status_report(
        [report], msg_id="GW-STS-1", created_at=WHEN, original_msg_id="M1"
    )
    async with started("mo-fps", SimRules(callback_500_ratio=1.0)) as (state, gw):
        reply = await gw.post("/providers/mo-301/status", body)
        assert reply.status == 500
        assert state.books["mo-301"].final_status("E-SENT-1") is None


async def test_deliveries_path_form_is_served_too() -> None:
    async with started("mo-fps") as (state, gw):
        t = delivery("mo-302", account="302000654321", amount=Money(5_000, "HKD"))
        reply = await gw.post("/deliveries/mo-302/transfers", encode_delivery(t))
        assert reply.status == 200
        assert state.books["mo-302"].credited_minor == {"HKD": 5_000}


# --- property: the books against a reference model ----------------------------------------

_KINDS = {"ok": None, "unknown": Reason.AC01, "closed": Reason.AC04}
_ACCOUNTS = {
    "ok": "801000000001",
    "unknown": UNKNOWN_ACCOUNT_PREFIX + "000000001",
    "closed": CLOSED_ACCOUNT_PREFIX + "000000001",
}


@st.composite
def delivery_runs(draw: st.DrawFn) -> tuple[list[tuple[str, int, str]], list[int]]:
    n = draw(st.integers(1, 5))
    transfers = [
        (
            draw(st.sampled_from(sorted(_KINDS))),
            draw(st.integers(1, 10**9)),
            draw(st.sampled_from(["HKD", "CNY"])),
        )
        for _ in range(n)
    ]
    order = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=12))
    return transfers, order


@settings(max_examples=25, deadline=None)
@given(delivery_runs())
def test_books_match_a_reference_model_under_redelivery(
    run: tuple[list[tuple[str, int, str]], list[int]],
) -> None:
    transfers, order = run

    async def scenario() -> None:
        async with started("hk-fps") as (state, gw):
            for i in order:
                kind, minor, ccy = transfers[i]
                t = delivery(
                    "hk-802", e2e=f"E-{i}", account=_ACCOUNTS[kind], amount=Money(minor, ccy)
                )
                reply = await gw.deliver("hk-802", t)
                [report] = answers("hk-fps", reply.body)
                expected = _KINDS[kind]
                assert report.reason == expected
                assert report.status == (TxStatus.RJCT if expected else TxStatus.ACSP)
            book = state.books["hk-802"]
            delivered = set(order)
            credited: dict[str, int] = {}
            for i in delivered:
                kind, minor, ccy = transfers[i]
                if kind == "ok":
                    credited[ccy] = credited.get(ccy, 0) + minor
            assert book.credited_minor == credited
            assert book.distinct == len(delivered)
            assert book.duplicates == len(order) - len(delivered)

    asyncio.run(scenario())


# --- running the three simulators on loopback ports -----------------------------------------


def test_ports_come_from_the_directory_endpoint_urls() -> None:
    providers_only = [p for p in DIRECTORY.participants if p.role == "provider"]
    assert plan_ports(providers_only) == {"hk-fps": 9101, "cn-ibps": 9102, "mo-fps": 9103}


async def test_run_simulators_serves_each_scheme_and_stops() -> None:
    ports = {"hk-fps": 0, "cn-ibps": 0, "mo-fps": 0}
    sims = await run_simulators(DIRECTORY.participants, GATEWAY_KEY.public_key(), ports=ports)
    try:
        assert set(sims.urls) == set(ports)
        t = delivery("mo-301", account="301000123456", amount=Money(2_500, "MOP"))
        body = encode_delivery(t)
        path = "/providers/mo-301/transfers"
        headers = sign_request(
            "POST", path, {"Content-Type": "application/xml"}, body, "baygate", GATEWAY_KEY
        )
        async with aiohttp.ClientSession() as session:
            async with session.post(sims.urls["mo-fps"] + path, data=body, headers=headers) as r:
                assert r.status == 200
                [report] = answers("mo-fps", await r.read())
        assert report.status is TxStatus.ACSP
        assert sims.book("mo-301").credited_minor == {"MOP": 2_500}
        assert "fx-bay" not in sims.state("hk-fps").books
    finally:
        await sims.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(sims.urls["mo-fps"] + path, data=body)
