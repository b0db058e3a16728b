"""Messages the gateway sends go grouped: the callbacks due to one sender share a status
report, and the deliveries due to one receiver share a credit transfer, each transaction
naming the gateway's id (ClrSysRef), whose answer decides each transfer alone."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import StatusReport
from adapters.registry import get_adapter
from clearing.model import Party, PartyId, PartyIdType, Proxy, ProxyType, Transfer, TxStatus
from clearing.money import Money
from clearing.reasons import Reason
from gateway import sim_messages as sm
from gateway.client import BaygateClient
from gateway.config import load_settings
from gateway.delivery import _attempt_groups, _delivery_id, _msg_id, _report_for, _report_id
from gateway.harness import Stack, running_stack
from gateway.sim_state import UNKNOWN_ACCOUNT_PREFIX, SimRules
from tests.adapters.helpers import sample_transfer
from tests.waiting import wait_until

TRANSFERS = 24


@contextlib.asynccontextmanager
async def _stack(
    db_dsn: str, tmp_path: Path, rules: dict[str, SimRules], timeout_s: float = 10
) -> AsyncIterator[Stack]:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, transfer_timeout_s=timeout_s)
    async with running_stack(settings, rules=rules) as s:
        yield s


@pytest.fixture
async def slowish_stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Mainland and Hong Kong receivers answer after 300 ms: transfers sent together end close
    together, and deliveries to one receiver pile up behind the first."""
    slow = SimRules(delay_ms=300)
    async with _stack(db_dsn, tmp_path, {"cn-ibps": slow, "hk-fps": slow}) as s:
        yield s


@pytest.fixture
async def refusing_sender_stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Hong Kong providers refuse every status report (HTTP 500); receivers answer at once."""
    async with _stack(db_dsn, tmp_path, {"hk-fps": SimRules(callback_500_ratio=1.0)}) as s:
        yield s


async def _send_hk(stack: Stack, sender_id: str, proxy: str, n: int) -> list[Transfer]:
    """`n` one-transaction pacs.008 messages from `sender_id` to a payee's mobile `proxy`, sent
    at once; each answered ACSP."""
    sender = sm.as_sender(stack.participant(sender_id))
    payee = sm.Payee("?", "?", sender.agent, "李伟", proxy=Proxy(ProxyType("MOBN"), proxy))
    return await _send_hk_to(stack, sender_id, [payee] * n)


async def _send_hk_to(stack: Stack, sender_id: str, payees: list[sm.Payee]) -> list[Transfer]:
    """One one-transaction pacs.008 message from `sender_id` to each payee, sent at once;
    each answered ACSP."""
    sender = sm.as_sender(stack.participant(sender_id))
    n = len(payees)
    tag = random.randrange(10**8)
    transfers = [
        sm.make_transfer(sender, payees[i], random.Random(i), msg_id=f"M{tag}X{i}", e2e=f"E{tag}X{i}",
                         created_at=dt.datetime.now(dt.UTC), amount=Money(5_000 + i, "HKD"))
        .evolve(debtor=Party("CHAN Tai Man", PartyId(PartyIdType.HKID, "A1234563")))
        for i in range(n)
    ]  # fmt: skip
    async with BaygateClient(stack.base_url, sender.id, stack.keys[sender.id]) as client:
        replies = await asyncio.gather(*(
            client.post_message("hk-fps", sm.encode("hk-fps", [t], t.msg_id, t.created_at)) for t in transfers
        ))  # fmt: skip
    for reply in replies:
        [report] = get_adapter("hk-fps").decode_status_reply(reply.body)
        assert report.status == TxStatus.ACSP, report
    return transfers


async def test_one_senders_final_statuses_share_status_reports(slowish_stack: Stack) -> None:
    stack = slowish_stack
    transfers = await _send_hk(stack, "hk-801", "+86-13800138000", TRANSFERS)

    book = stack.sims.book("hk-801")
    await wait_until(lambda: all(book.final_status(t.end_to_end_id) is not None for t in transfers), timeout_s=20)
    assert {book.final_status(t.end_to_end_id) for t in transfers} == {(TxStatus.ACSC, None)}
    assert book.callbacks_received == TRANSFERS  # each told once
    # One report per transfer before grouping; now the 24 ended within a few hundred ms of
    # each other and share reports.
    assert book.status_reports < TRANSFERS, book.status_reports


rows_st = st.lists(
    st.fixed_dictionaries({
        "kind": st.sampled_from(["deliver", "callback", "notice"]),
        "sender_id": st.sampled_from(["hk-801", "cn-pearl", "mo-301"]),
        "receiver_id": st.sampled_from(["hk-802", "cn-jade", "mo-302"]),
        "state": st.sampled_from(["RESERVED", "RESERVED", "COMMITTED"]),
        "end_to_end_id": st.sampled_from(["E1", "E2", "E3", "E4", "E5"]),
        "found": st.sampled_from([True, True, None]),
    }),
    max_size=60,
).map(lambda rows: [dict(r, id=i) for i, r in enumerate(rows)])  # fmt: skip


def _key(row: dict) -> tuple[str, str] | None:
    """What may share an attempt, by the rules the grouping documents."""
    if row["found"] is None:
        return None
    if row["kind"] == "callback":
        return ("callback", row["sender_id"])
    if row["kind"] == "deliver" and row["state"] == "RESERVED":
        return ("deliver", row["receiver_id"])
    return None


@settings(max_examples=300, deadline=None)
@given(rows=rows_st, callbacks_max=st.integers(1, 7), deliveries_max=st.integers(1, 7))
def test_claimed_rows_become_attempts_each_once(rows, callbacks_max, deliveries_max) -> None:
    groups = _attempt_groups(rows, callbacks_max, deliveries_max)
    assert sorted(r["id"] for g in groups for r in g) == [r["id"] for r in rows]  # each row once
    by_key: dict[tuple[str, str], list[list[dict]]] = {}
    for g in groups:
        assert all(g[i]["id"] < g[i + 1]["id"] for i in range(len(g) - 1))  # claim order kept
        key = _key(g[0])
        if key is None:
            assert len(g) == 1  # a notice, another delivery or a gone transfer's row: alone
            continue
        assert {_key(r) for r in g} == {key}  # one sender's callbacks, one receiver's deliveries
        assert len(g) <= (callbacks_max if key[0] == "callback" else deliveries_max)
        if key[0] == "deliver":  # the answers match each transfer by its end-to-end id
            assert len({r["end_to_end_id"] for r in g}) == len(g)
        by_key.setdefault(key, []).append(g)
    # A group is split only when full, or (deliveries) when the next row repeats an
    # end-to-end id it holds.
    for (kind, _), gs in by_key.items():
        full = callbacks_max if kind == "callback" else deliveries_max
        for g, after in itertools.pairwise(gs):
            assert len(g) == full or (kind == "deliver" and after[0]["end_to_end_id"] in {r["end_to_end_id"] for r in g})


async def test_a_refused_report_is_retried_for_every_transfer_it_told(refusing_sender_stack: Stack) -> None:
    stack = refusing_sender_stack
    transfers = await _send_hk(stack, "hk-802", "+853-62876543", 8)
    got: list[asyncpg.Record] = []

    async def all_rescheduled(conn: asyncpg.Connection) -> bool:
        nonlocal got
        got = await conn.fetch(
            "SELECT o.attempts, o.last_error, o.done_at FROM outbox o JOIN transfers t ON t.id = o.transfer_id"
            " WHERE o.kind = 'callback' AND t.sender_id = 'hk-802' AND t.end_to_end_id = ANY($1::text[])",
            [t.end_to_end_id for t in transfers],
        )
        return len(got) == len(transfers) and all(r["last_error"] for r in got)

    await _until_in_db(stack, all_rescheduled)
    # Every transfer's callback is rescheduled on its own, none marked done, nothing recorded.
    assert {r["last_error"] for r in got} == {"callback not acknowledged"}
    assert all(r["done_at"] is None and r["attempts"] >= 1 for r in got)
    book = stack.sims.book("hk-802")
    assert book.callbacks_failed >= 1 and book.callbacks_received == 0


def _cny_json(msg_id: str, e2e: str) -> dict:
    return {
        "msg_id": msg_id, "end_to_end_id": e2e, "amount": "88.00", "currency": "CNY",
        "debtor": {"name": "李伟"}, "debtor_account": {"number": "6222020200001234567"},
        "creditor": {"name": "王芳"}, "creditor_account": {"proxy": {"type": "MOBN", "value": "+86-13912345678"}},
    }  # fmt: skip


async def test_a_status_the_senders_scheme_cannot_carry_does_not_hold_back_the_others(slowish_stack: Stack) -> None:
    """An ibps receipt's header cannot name a message id with spaces, which the JSON API
    accepts: that one status is dropped (the sender can still GET it), the others arrive."""
    stack = slowish_stack
    tag = random.randrange(10**8)
    bad = _cny_json(f"J (odd) {tag}", f"JB{tag}")
    good = [_cny_json(f"JG{tag}X{i}", f"JG{tag}X{i}") for i in range(6)]
    async with BaygateClient(stack.base_url, "cn-pearl", stack.keys["cn-pearl"]) as client:
        replies = await asyncio.gather(*(client.post_json("/v1/transfers", b) for b in [bad, *good]))
    assert all(r.status in (200, 201, 202) for r in replies), [(r.status, r.body) for r in replies]

    book = stack.sims.book("cn-pearl")
    await wait_until(lambda: all(book.final_status(b["end_to_end_id"]) is not None for b in good), timeout_s=20)

    async def bad_callback_done(conn: asyncpg.Connection) -> bool:
        return await conn.fetchval(
            "SELECT o.done_at IS NOT NULL FROM outbox o JOIN transfers t ON t.id = o.transfer_id"
            " WHERE o.kind = 'callback' AND t.sender_id = 'cn-pearl' AND t.end_to_end_id = $1",
            bad["end_to_end_id"],
        ) is True

    await _until_in_db(stack, bad_callback_done)
    assert book.final_status(bad["end_to_end_id"]) is None
    assert {book.final_status(b["end_to_end_id"]) for b in good} == {(TxStatus.ACSC, None)}


async def _until_in_db(stack: Stack, pred: Callable[[asyncpg.Connection], Awaitable[bool]], timeout_s: float = 20) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await pred(conn):
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


tids_st = st.lists(st.uuids().map(lambda u: u.hex), min_size=1, max_size=8, unique=True)


@settings(max_examples=200, deadline=None)
@given(a=tids_st, b=tids_st, data=st.data())
def test_a_message_id_names_its_set_of_transfers(a: list[str], b: list[str], data: st.DataObject) -> None:
    """Callback reports (`_report_id`) and delivery messages (`_delivery_id`) alike."""
    shuffled = data.draw(st.permutations(a))
    for set_id, alone in ((_report_id, lambda tid: _msg_id(tid, "S")), (_delivery_id, _msg_id)):
        assert set_id(shuffled) == set_id(a)  # a retry of the same set repeats its id
        assert (set_id(a) == set_id(b)) == (set(a) == set(b))  # another set, another id
        if len(a) == 1:
            assert set_id(a) == alone(a[0])  # as before grouping
        assert len(set_id(a)) <= 35 and set_id(a).startswith("BG")
    assert _report_id(a) != _delivery_id(a)
    now = dt.datetime.now(dt.UTC)
    for scheme in ("hk-fps", "cn-ibps", "mo-fps"):  # every scheme can carry them
        report = StatusReport("M1", "E1", None, TxStatus.ACSC, None, None, "G1")
        get_adapter(scheme).encode_status_report([report], msg_id=_report_id(a), created_at=now, original_msg_id="M1")
        get_adapter(scheme).encode_transfer(sample_transfer(scheme), msg_id=_delivery_id(a), created_at=now)


# --- deliveries ------------------------------------------------------------------------------


@pytest.fixture
async def forgetful_stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Hong Kong and Mainland receivers credit every delivery and lose every answer;
    transfers expire in 4 s."""
    forgetful = SimRules(lost_answer_ratio=1.0)
    async with _stack(db_dsn, tmp_path, {"hk-fps": forgetful, "cn-ibps": forgetful}, timeout_s=4) as s:
        yield s


def _hk802_payees(stack: Stack, accounts: list[str]) -> list[sm.Payee]:
    agent = sm.as_sender(stack.participant("hk-802")).agent
    return [sm.Payee("hk-802", "hk-fps", agent, "陳小明", account=a) for a in accounts]


async def test_deliveries_to_one_receiver_share_messages_each_decided_alone(slowish_stack: Stack) -> None:
    stack = slowish_stack
    # Every sixth payee's account is unknown to the receiver (AC01); the rest are credited.
    accounts = [f"80200{i:07d}" if i % 6 else f"{UNKNOWN_ACCOUNT_PREFIX}00{i:07d}" for i in range(TRANSFERS)]
    transfers = await _send_hk_to(stack, "hk-801", _hk802_payees(stack, accounts))
    unknown = {t.end_to_end_id for t in transfers if t.creditor_account.number.startswith(UNKNOWN_ACCOUNT_PREFIX)}

    sender = stack.sims.book("hk-801")
    await wait_until(lambda: all(sender.final_status(t.end_to_end_id) is not None for t in transfers), timeout_s=20)
    for t in transfers:
        expected = (TxStatus.RJCT, Reason.AC01) if t.end_to_end_id in unknown else (TxStatus.ACSC, None)
        assert sender.final_status(t.end_to_end_id) == expected, t.end_to_end_id
    receiver = stack.sims.book("hk-802")
    assert receiver.transactions == TRANSFERS and receiver.duplicates == 0  # each delivered once
    assert receiver.credited_minor == {"HKD": sum(t.amount.minor for t in transfers if t.end_to_end_id not in unknown)}
    # One message per transfer before grouping; now transfers accepted together travel together.
    assert receiver.deliveries < TRANSFERS, receiver.deliveries


@pytest.mark.parametrize("receiver_id", ["hk-802", "cn-pearl"])  # pacs.008, ibps.101
async def test_a_notice_reverses_a_credit_delivered_in_a_shared_message(forgetful_stack: Stack, receiver_id: str) -> None:
    """The receiver credited transfers delivered together, but its answers were lost and they
    expired: each notice names its transaction by the gateway's id, which the receiver
    finds whatever message delivered it, and every credit is reversed."""
    stack = forgetful_stack
    if receiver_id == "hk-802":
        payees = _hk802_payees(stack, [f"80201{i:07d}" for i in range(8)])
    else:  # a Mainland payee by mobile number: HKD converted to CNY
        agent = sm.as_sender(stack.participant("hk-801")).agent
        payees = [sm.Payee("?", "?", agent, "李伟", proxy=Proxy(ProxyType("MOBN"), "+86-13800138000"))] * 8
    transfers = await _send_hk_to(stack, "hk-801", payees)

    sender, receiver = stack.sims.book("hk-801"), stack.sims.book(receiver_id)
    await wait_until(lambda: all(sender.final_status(t.end_to_end_id) is not None for t in transfers), timeout_s=30)
    assert {sender.final_status(t.end_to_end_id) for t in transfers} == {(TxStatus.RJCT, Reason.AB05)}
    await wait_until(lambda: receiver.reversed == len(transfers), timeout_s=20)
    assert receiver.credited_minor == {}
    assert receiver.transactions > receiver.deliveries  # some message carried several transfers


@contextlib.asynccontextmanager
async def _receiver_refusing_shared_messages() -> AsyncIterator[tuple[str, list[int]]]:
    """An hk-fps receiver that refuses any message of several transactions as a whole (a
    group status RJCT, naming none of them) and accepts one transaction alone. Yields its
    URL and the number of transactions of each delivery it got."""
    adapter = get_adapter("hk-fps")
    sizes: list[int] = []

    async def transfers(request: web.Request) -> web.Response:
        decoded = adapter.decode_transfers(await request.read())
        sizes.append(len(decoded.txs))
        if len(decoded.txs) > 1:
            reports = [StatusReport(None, None, None, TxStatus.RJCT, Reason.FF01, "one transaction a message")]
        else:
            [tx] = decoded.txs
            reports = [StatusReport(decoded.msg_id, tx.end_to_end_id, tx.tx_id, TxStatus.ACSP, gateway_id=tx.clearing_ref)]
        reply = adapter.encode_status_report(reports, msg_id=f"R{len(sizes)}", created_at=dt.datetime.now(dt.UTC),
                                             original_msg_id=decoded.msg_id)  # fmt: skip
        return web.Response(body=reply, headers={"Content-Type": adapter.media_type})

    async def status(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/transfers", transfers)
    app.router.add_post("/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", sizes
    finally:
        await runner.cleanup()


async def test_a_message_refused_as_a_whole_goes_again_one_transfer_at_a_time(slowish_stack: Stack) -> None:
    """A refusal of the whole message names no transaction: it may be for one of them only.
    Its transfers are delivered again one by one, and each is decided by its own answer."""
    stack = slowish_stack
    async with _receiver_refusing_shared_messages() as (url, sizes):
        async with aiohttp.ClientSession() as http:
            async with http.patch(f"{stack.base_url}/v1/operator/participants/hk-802", json={"endpoint_url": url},
                                  headers={"Authorization": f"Bearer {stack.operator_token}"}) as r:  # fmt: skip
                assert r.status == 200, await r.text()
        transfers = await _send_hk_to(stack, "hk-801", _hk802_payees(stack, [f"80202{i:07d}" for i in range(12)]))
        sender = stack.sims.book("hk-801")
        await wait_until(lambda: all(sender.final_status(t.end_to_end_id) is not None for t in transfers), timeout_s=20)
    assert {sender.final_status(t.end_to_end_id) for t in transfers} == {(TxStatus.ACSC, None)}
    assert max(sizes) > 1  # some went together first, then (accepted alone only) each alone


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 8), data=st.data())
def test_each_delivered_transfer_finds_its_own_answer(n: int, data: st.DataObject) -> None:
    """However the receiver names a transaction (the gateway's id, the end-to-end id, or the
    transaction id alone) and in whatever order, each transfer of a message gets its own
    answer; one the answer leaves out gets the whole message's status, or none."""
    transfers = [sample_transfer("hk-fps", id=f"G{i}", end_to_end_id=f"E{i}", tx_id=data.draw(st.sampled_from([None, f"T{i}"])))
                 for i in range(n)]  # fmt: skip
    ways = ["gateway id", "end-to-end id", "transaction id", "left out"]
    own: list[StatusReport | None] = []  # each transfer's own answer
    for i, t in enumerate(transfers):
        status = TxStatus.ACSP if i % 2 else TxStatus.RJCT  # tells neighbours' answers apart
        how = data.draw(st.sampled_from(ways))
        own.append(
            StatusReport("M", None, None, status, gateway_id=t.id) if how == "gateway id"
            else StatusReport("M", t.end_to_end_id, None, status) if how == "end-to-end id"
            else StatusReport("M", None, t.tx_id or t.end_to_end_id, status) if how == "transaction id"
            else None
        )  # fmt: skip
    whole = data.draw(st.sampled_from([None, StatusReport("M", None, None, TxStatus.ACCP)]))
    answer = [r for r in [*own, whole] if r is not None]
    shuffled = data.draw(st.permutations(answer))
    for t, mine in zip(transfers, own, strict=True):
        assert _report_for(shuffled, t) is (mine if mine is not None else whole)
