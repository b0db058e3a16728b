"""Concurrency over real HTTP: a payer driven at its cap by 50 clients, 100 copies of one
submission at once, and settlement windows closed while transfers commit.

The invariants are checked from the database while the load runs (not only at the end):
a position never exceeds its effective cap; one submission is one transfer; a committed
transfer lies in exactly one window and the window's totals are the sum of its transfers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from adapters.registry import get_adapter
from clearing.model import Proxy, ProxyType
from clearing.money import Money
from gateway import hostile
from gateway import sim_messages as sm
from gateway.client import BaygateClient
from gateway.config import load_settings
from gateway.harness import Stack, running_stack

PAYER = "hk-803"
PAYER_CAP = "2500.00"  # effective cap, HKD: min(net debit cap, liquidity cover)
CLIENTS = 50
CREDITORS = 4
PAYER_PAYEES = ("+852-91234567", "+852-62345678")  # at hk-801 and hk-802
PAYER_PROXY = "+852-53456789"  # hk-803's own customer
SETTLE_TIMEOUT_S = 120.0
COPIES = 100


def _tight_payer(d: Any) -> Any:
    """hk-803 with a small HKD cap, so that 50 clients reach it within a few requests each."""
    parts = []
    for p in d.participants:
        if p.id == PAYER:
            limits = [lim.model_copy(update={"net_debit_cap": "3000.00", "liquidity_cover": PAYER_CAP})
                      if lim.currency == "HKD" else lim for lim in p.limits]  # fmt: skip
            p = p.model_copy(update={"limits": limits})
        parts.append(p)
    return d.model_copy(update={"participants": parts})


def _roomy_caps(d: Any) -> Any:
    """Every cap and cover times 100: a long window run measures windows, not caps."""
    parts = []
    for p in d.participants:
        limits = [lim.model_copy(update={"net_debit_cap": str(Decimal(lim.net_debit_cap) * 100),
                                         "liquidity_cover": str(Decimal(lim.liquidity_cover) * 100)})
                  for lim in p.limits]  # fmt: skip
        parts.append(p.model_copy(update={"limits": limits}))
    return d.model_copy(update={"participants": parts})


async def wait_for(
    pred: Callable[[], Awaitable[bool]], timeout_s: float = SETTLE_TIMEOUT_S
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def _json_transfer(e2e: str, amount_minor: int, proxy: str, rng: random.Random) -> dict[str, Any]:
    return {
        "msg_id": "M" + e2e, "end_to_end_id": e2e, "amount": f"{amount_minor // 100}.{amount_minor % 100:02d}",
        "currency": "HKD", "debtor": {"name": "CHAN Tai Man", "id_type": "HKID", "id_value": "A1234563"},
        "debtor_account": {"number": f"803{rng.randrange(10**9):09d}"}, "creditor": {"name": "WONG Siu Ming"},
        "creditor_account": {"proxy": {"type": "MOBN", "value": proxy}},
    }  # fmt: skip


@dataclass
class CapWatch:
    """Polls every position against its limits in one statement (one snapshot) per round."""

    dsn: str
    polls: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    payer_exposure_max: int = 0
    payer_reserved_seen: bool = False

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not stop.is_set():
                rows = await conn.fetch(
                    """SELECT p.participant_id, p.currency, p.net, p.reserved,
                              least(l.net_debit_cap, l.liquidity_cover) AS cap
                         FROM clearing_positions p
                         JOIN participant_limits l USING (participant_id, currency)"""
                )
                self.polls += 1
                for r in rows:
                    if r["net"] + r["reserved"] > r["cap"]:
                        self.violations.append(dict(r))
                    if (r["participant_id"], r["currency"]) == (PAYER, "HKD"):
                        self.payer_exposure_max = max(
                            self.payer_exposure_max, r["net"] + r["reserved"]
                        )
                        self.payer_reserved_seen |= r["reserved"] > 0
                await asyncio.sleep(0.005)
        finally:
            await conn.close()


async def drive_payer(stack: Stack, requests_per_client: int) -> None:
    """50 clients pay out of hk-803 (JSON and pacs.008) while 4 clients pay into it."""
    outcomes: Counter[str] = Counter()
    accepted: list[tuple[str, str]] = []  # (sender, e2e)
    payer = sm.as_sender(stack.participant(PAYER))

    async def payer_client(i: int) -> None:
        rng = random.Random(f"payer:{i}")
        async with BaygateClient(stack.base_url, PAYER, stack.keys[PAYER]) as c:
            for k in range(requests_per_client):
                e2e = f"CAP{i:03d}{k:05d}"
                amount = rng.randint(2_000, 15_000)
                proxy = rng.choice(PAYER_PAYEES)
                if k % 2 == 0:
                    r = await c.post_json("/v1/transfers", _json_transfer(e2e, amount, proxy, rng))
                    assert r.status in (200, 201), r.body
                    status, reason = r.body["status"], r.body["reason"]
                else:
                    payee = sm.Payee(
                        "?", "hk-fps", payer.agent, "WONG", proxy=Proxy(ProxyType.MOBILE, proxy)
                    )
                    t = sm.make_transfer(payer, payee, rng, msg_id="M" + e2e, e2e=e2e,
                                         created_at=dt.datetime.now(dt.UTC), amount=Money(amount, "HKD"))  # fmt: skip
                    r = await c.post_message(
                        "hk-fps", sm.encode("hk-fps", [t], t.msg_id, t.created_at)
                    )
                    assert r.status == 200, r.body[:300]
                    [rep] = get_adapter("hk-fps").decode_status_reply(r.body)
                    status, reason = str(rep.status), rep.reason and str(rep.reason)
                outcomes[f"{status}/{reason}"] += 1
                if status == "ACSP":
                    accepted.append((PAYER, e2e))

    async def creditor_client(i: int) -> None:
        rng = random.Random(f"creditor:{i}")
        sender = ("hk-801", "hk-802")[i % 2]
        async with BaygateClient(stack.base_url, sender, stack.keys[sender]) as c:
            for k in range(requests_per_client):
                e2e = f"IN{i:03d}{k:05d}"
                r = await c.post_json(
                    "/v1/transfers",
                    _json_transfer(e2e, rng.randint(2_000, 15_000), PAYER_PROXY, rng),
                )
                assert r.status in (200, 201) and r.body["status"] == "ACSP", r.body
                accepted.append((sender, e2e))

    await asyncio.gather(*(payer_client(i) for i in range(CLIENTS)),
                         *(creditor_client(i) for i in range(CREDITORS)))  # fmt: skip
    print(json.dumps({"outcomes": dict(outcomes)}))
    assert outcomes["ACSP/None"] > 0, outcomes
    assert outcomes["RJCT/AM04"] > 0, outcomes  # the demand did exceed the cap
    assert set(outcomes) <= {"ACSP/None", "RJCT/AM04"}, outcomes

    async def settled() -> bool:
        return all(stack.sims.book(s).final_status(e) is not None for s, e in accepted)

    await wait_for(settled)


async def run_cap_scenario(tmp_path: Path, db_dsn: str, requests_per_client: int) -> None:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, log_level="error")
    async with running_stack(settings, transform=_tight_payer) as stack:
        watch = CapWatch(stack.dsn)
        stop = asyncio.Event()
        poller = asyncio.create_task(watch.run(stop))
        try:
            await drive_payer(stack, requests_per_client)
        finally:
            stop.set()
            await poller
        cap = Money.parse(PAYER_CAP, "HKD").minor
        print(
            json.dumps(
                {"polls": watch.polls, "payer_exposure_max": watch.payer_exposure_max, "cap": cap}
            )
        )
        assert watch.violations == [], watch.violations[:5]
        assert watch.polls > 0 and watch.payer_reserved_seen
        assert watch.payer_exposure_max > cap - 15_000  # the payer was driven close to its cap
        conn = await asyncpg.connect(stack.dsn)
        try:
            pos = await conn.fetchrow(
                "SELECT net, reserved FROM clearing_positions WHERE participant_id = $1 AND currency = 'HKD'",
                PAYER,
            )
            legs = await conn.fetchval(
                """SELECT coalesce(sum(CASE WHEN payer = $1 THEN amount ELSE -amount END), 0)
                     FROM clearing_legs WHERE state = 'COMMITTED' AND currency = 'HKD'
                      AND $1 IN (payer, payee)""",
                PAYER,
            )
        finally:
            await conn.close()
    # At rest: nothing reserved, and the position is exactly what its committed legs add up to.
    assert pos["reserved"] == 0
    assert pos["net"] == legs
    assert pos["net"] <= cap


async def test_fifty_clients_never_push_a_payer_past_its_cap(tmp_path: Path, db_dsn: str) -> None:
    await run_cap_scenario(tmp_path, db_dsn, requests_per_client=10)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_fifty_clients_at_the_cap_long_run(tmp_path: Path, db_dsn: str) -> None:
    await run_cap_scenario(tmp_path, db_dsn, requests_per_client=80)


# --- one submission, many copies -------------------------------------------------------------


def _one_submission(stack: Stack, kind: str, tag: str) -> tuple[str, str, str, bytes, int]:
    """(sender, path, content type, body, amount) of one same-currency transfer of `kind`."""
    rng = random.Random(tag)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sender_id, scheme = {"json": ("hk-802", "hk-fps"), "hk-fps": ("hk-801", "hk-fps"),
                         "cn-ibps": ("cn-pearl", "cn-ibps"), "mo-fps": ("mo-301", "mo-fps")}[kind]  # fmt: skip
    sender = sm.as_sender(stack.participant(sender_id))
    payees = [p for p in sm.payees_from_directory(stack.directory, rng)
              if p.scheme == scheme and p.participant_id != sender_id and p.account is not None]  # fmt: skip
    ccy = sm.corridor_currencies(scheme, scheme)[0]
    amount = Money(rng.randint(10_000, 90_000), ccy)
    e2e = sm.end_to_end_id(sender, tag, 1)
    t = sm.make_transfer(sender, rng.choice(payees), rng, msg_id=sm.message_id(sender, tag, 0), e2e=e2e,
                         created_at=now, amount=amount)  # fmt: skip
    if kind == "json":
        body = json.dumps(hostile.transfer_json(t)).encode()
        return sender_id, "/v1/transfers", "application/json", body, amount.minor
    return (
        sender_id,
        f"/v1/schemes/{scheme}/messages",
        "application/xml",
        sm.encode(scheme, [t], t.msg_id, now),
        amount.minor,
    )


async def send_copies(
    stack: Stack, kind: str, sender: str, path: str, ctype: str, body: bytes
) -> list[tuple[int, str | None, bool, str]]:
    """COPIES signed copies of one request from COPIES clients released together:
    (HTTP status, gateway id, replay flag (JSON only), transaction status) each."""
    gate = asyncio.Event()

    async def copy(client: BaygateClient) -> tuple[int, str | None, bool, str]:
        await gate.wait()
        r = await client.request("POST", path, body, {"Content-Type": ctype})
        if kind == "json":
            out = json.loads(r.body)
            return r.status, out.get("id"), bool(out.get("replay")), out.get("status", "")
        [rep] = get_adapter(kind).decode_status_reply(r.body)
        return r.status, rep.gateway_id, False, str(rep.status)

    clients = [BaygateClient(stack.base_url, sender, stack.keys[sender]) for _ in range(COPIES)]
    try:
        tasks = [asyncio.create_task(copy(c)) for c in clients]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks))
    finally:
        await asyncio.gather(*(c.close() for c in clients))


@pytest.mark.parametrize("kind", ["json", "hk-fps", "cn-ibps", "mo-fps"])
async def test_a_hundred_concurrent_copies_make_one_transfer(
    tmp_path: Path, db_dsn: str, kind: str
) -> None:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, log_level="error")
    async with running_stack(settings) as stack:
        sender, path, ctype, body, amount = _one_submission(stack, kind, "C" + kind[:2].upper())
        answers = await send_copies(stack, kind, sender, path, ctype, body)
        ids = {a[1] for a in answers}
        assert len(ids) == 1 and None not in ids, Counter(answers)
        assert {a[3] for a in answers} == {"ACSP"}, Counter(answers)
        if kind == "json":  # exactly one copy created it; the others are replays of it
            created = [a for a in answers if not a[2]]
            assert [(a[0], a[3]) for a in created] == [(201, "ACSP")], Counter(answers)
            assert {a[0] for a in answers if a[2]} == {200}
        else:
            assert {a[0] for a in answers} == {200}
        [tid] = ids
        e2e = json.loads(body)["end_to_end_id"] if kind == "json" else None

        async def final() -> bool:
            async with stack_conn(stack) as conn:
                return (
                    await conn.fetchval("SELECT state FROM clearing_transfers WHERE id = $1", tid)
                    == "COMMITTED"
                )

        await wait_for(final)
        async with stack_conn(stack) as conn:
            rows = await conn.fetch(
                "SELECT id, end_to_end_id FROM transfers WHERE sender_id = $1", sender
            )
            clearing = await conn.fetchval(
                "SELECT count(*) FROM clearing_transfers WHERE payer = $1", sender
            )
            outbox = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE transfer_id = $1 AND kind = 'deliver'", tid
            )
            net = await conn.fetchval(
                "SELECT net FROM clearing_positions WHERE participant_id = $1 AND net <> 0", sender
            )
        assert [r["id"] for r in rows] == [tid] and (e2e is None or rows[0]["end_to_end_id"] == e2e)
        assert (clearing, outbox) == (1, 1)
        assert net == amount  # debited once
        received = [a for p in stack.directory.participants if p.role == "provider"
                    for a in stack.sims.book(p.id).applied.values() if a.end_to_end_id == rows[0]["end_to_end_id"]]  # fmt: skip
        assert len(received) == 1


class stack_conn:
    """`async with stack_conn(stack) as conn`: a short-lived connection to the stack's database."""

    def __init__(self, stack: Stack) -> None:
        self.dsn = stack.dsn

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn = await asyncpg.connect(self.dsn)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()


async def test_copies_in_one_batch_all_get_the_final_answer(tmp_path: Path, db_dsn: str) -> None:
    """100 copies of a payment over the payer's cap: every copy says RJCT, none ACCP (a copy
    sharing a batch with the first once read the row as inserted, before it was decided)."""
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, log_level="error")
    async with running_stack(settings, transform=_tight_payer) as stack:
        rng = random.Random("over-cap")
        body = json.dumps(_json_transfer("OVERCAP0001", 300_000, PAYER_PAYEES[0], rng)).encode()
        answers = await send_copies(stack, "json", PAYER, "/v1/transfers", "application/json", body)
    assert {a[3] for a in answers} == {"RJCT"}, Counter(a[3] for a in answers)


# --- windows closed under load ---------------------------------------------------------------

CLOSES = 3


async def close_window(stack: Stack) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{stack.base_url}/v1/operator/windows/close", headers=headers) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


async def load_with_closes(
    stack: Stack, messages: int
) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """`messages` valid native messages from every provider, 16 at a time, with a window close
    each time another quarter of them has been answered. Returns accepted (sender, e2e)."""
    rng = random.Random("windows")
    payees = sm.payees_from_directory(stack.directory, rng)
    senders = [p for p in stack.directory.participants if p.role == "provider"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    gate = asyncio.Semaphore(16)
    accepted: list[tuple[str, str]] = []
    closes: list[asyncio.Task[dict[str, Any]]] = []
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        p = senders[i % len(senders)]
        body, ids = sm.build_message(p.scheme, p, payees, rng.randint(1, 3), rng, tag="WIN", seq=i * 10,
                                     created_at=now)  # fmt: skip
        async with gate, BaygateClient(stack.base_url, p.id, stack.keys[p.id]) as c:
            r = await c.post_message(p.scheme, body)
        assert r.status == 200, r.body[:300]
        reports = get_adapter(p.scheme).decode_status_reply(r.body)
        assert {str(x.status) for x in reports} == {"ACSP"}, reports
        accepted.extend((p.id, e) for e in ids)
        done += 1
        if len(closes) < CLOSES and done >= (len(closes) + 1) * messages // (CLOSES + 1):
            closes.append(asyncio.create_task(close_window(stack)))

    await asyncio.gather(*(one(i) for i in range(messages)))
    return accepted, list(await asyncio.gather(*closes))


LEG_TOTALS = """
WITH sides AS (
    SELECT window_id, payer AS participant_id, currency, amount AS debits, 0::bigint AS credits
      FROM clearing_legs WHERE state = 'COMMITTED'
    UNION ALL
    SELECT window_id, payee, currency, 0, amount FROM clearing_legs WHERE state = 'COMMITTED'
)
SELECT window_id, participant_id, currency, sum(debits)::bigint AS debits, sum(credits)::bigint AS credits
  FROM sides GROUP BY 1, 2, 3
"""


def _totals(rows: Any) -> dict[tuple[int, str, str], tuple[int, int]]:
    return {(r["window_id"], r["participant_id"], r["currency"]): (r["debits"], r["credits"])
            for r in rows if (r["debits"], r["credits"]) != (0, 0)}  # fmt: skip


async def run_window_scenario(tmp_path: Path, db_dsn: str, messages: int) -> None:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, log_level="error")
    async with running_stack(settings, transform=_roomy_caps) as stack:
        accepted, closes = await load_with_closes(stack, messages)

        async def settled() -> bool:
            return all(stack.sims.book(s).final_status(e) is not None for s, e in accepted)

        await wait_for(settled)
        async with stack_conn(stack) as conn:
            committed = await conn.fetch(
                "SELECT id, window_id FROM clearing_transfers WHERE state = 'COMMITTED'"
            )
            gateway_committed = {
                r["id"]
                for r in await conn.fetch("SELECT id FROM transfers WHERE state = 'COMMITTED'")
            }
            windows = {
                r["id"]: r["state"]
                for r in await conn.fetch("SELECT id, state FROM clearing_windows")
            }
            legs = _totals(await conn.fetch(LEG_TOTALS))
            totals = _totals(await conn.fetch(
                "SELECT window_id, participant_id, currency, debits, credits FROM clearing_window_totals"))  # fmt: skip
            lines = {
                c["window_id"]: _totals(await conn.fetch(
                    """SELECT $2::bigint AS window_id, participant_id, currency, debits, credits
                         FROM clearing_settlement_lines WHERE settlement_id = $1""", c["settlement_id"], c["window_id"]))
                for c in closes if c["settlement_id"] is not None
            }  # fmt: skip
            entries_off = await conn.fetchval(
                """SELECT count(*) FROM clearing_ledger_entries e JOIN clearing_transfers t ON t.id = e.journal_id
                    WHERE e.window_id IS DISTINCT FROM t.window_id"""
            )
    finals = Counter(str(stack.sims.book(s).final_status(e)[0]) for s, e in accepted)  # type: ignore[index]
    per_window = Counter(r["window_id"] for r in committed)
    print(json.dumps({"transfers": len(accepted), "finals": dict(finals), "per_window": dict(per_window),
                      "closes": [c["window_id"] for c in closes]}))  # fmt: skip
    assert [c["window_id"] for c in closes] == [1, 2, 3] and len(windows) == CLOSES + 1
    # Every committed transfer lies in exactly one window that exists, in both records.
    assert all(r["window_id"] in windows for r in committed)
    assert {r["id"] for r in committed} == gateway_committed
    assert len(gateway_committed) == finals["ACSC"]
    # The closes happened under load: several windows hold transfers.
    assert sum(1 for w in (1, 2, 3, 4) if per_window[w]) >= 3, per_window
    # Running totals of every window are exactly the sum of its committed legs...
    assert totals == legs
    # ...and what each close settled is what its window holds now: no commit landed in a
    # window after it closed.
    for wid, settled_lines in lines.items():
        assert settled_lines == {k: v for k, v in legs.items() if k[0] == wid}, wid
    assert entries_off == 0  # every ledger entry carries its transfer's window


async def test_windows_closed_under_load_hold_each_transfer_once(
    tmp_path: Path, db_dsn: str
) -> None:
    await run_window_scenario(tmp_path, db_dsn, messages=160)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_windows_closed_under_load_long_run(tmp_path: Path, db_dsn: str) -> None:
    await run_window_scenario(tmp_path, db_dsn, messages=3_000)
