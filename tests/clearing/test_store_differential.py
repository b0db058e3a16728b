"""The PostgreSQL store against the in-memory engine, on the same random programs.

The engine is itself checked against the reference model (test_engine_stateful.py); here every
answer of the store (decisions with their messages, outcomes, expiries, positions, window
closes with their netting, settlement views, bilateral nets) must equal the engine's, and the
database's own view of the ledger must balance and match the positions.
"""

from __future__ import annotations

import random
from datetime import timedelta

import asyncpg
import pytest

from clearing.engine import MemoryEngine
from clearing.fx import convert
from clearing.money import Money
from clearing.ports import ClearingError, Leg, ReserveRequest
from gateway.clearing_store import ClearingStore
from tests.clearing.conftest import IDENTITY_KEY, Clock, seed

PROVIDERS = ("pa", "pb", "pc", "pd")
CCYS = ("HKD", "CNY")


class Pair:
    """Drives the engine and the store with the same operations and compares the answers."""

    def __init__(self, store: ClearingStore, clock: Clock, rng: random.Random) -> None:
        self.store = store
        self.clock = clock
        self.rng = rng
        self.eng = MemoryEngine(clock, identity_key=IDENTITY_KEY)
        for p in PROVIDERS:
            self.eng.add_participant(p)
        self.eng.add_participant("fx", role="fx_provider")
        self.quotes: list[tuple[str, str]] = []  # (engine id, store id)
        self.ids: list[str] = []
        self.n = 0

    async def set_limits(self) -> None:
        p = self.rng.choice((*PROVIDERS, "fx"))
        c = self.rng.choice(CCYS)
        ndc, cover = (self.rng.choice((0, 20_000, 10**5, 10**6, 10**6)) for _ in range(2))
        got = await self.store.set_limits(p, c, ndc, cover)
        assert got == self.eng.set_limits(p, c, ndc, cover)

    async def quote(self) -> None:
        ttl = self.rng.choice((1, 30, 120))
        qe = self.eng.create_quote("HKD", "CNY", ttl_s=ttl)
        qs = await self.store.create_quote("HKD", "CNY", ttl_s=ttl)
        assert (qe.rate, qe.expires_at, qe.fx_provider) == (qs.rate, qs.expires_at, qs.fx_provider)
        self.quotes.append((qe.id, qs.id))

    async def reserve(self) -> None:
        specs = []
        for _ in range(self.rng.randint(1, 6)):
            self.n += 1
            tid = (
                self.rng.choice(self.ids) if self.ids and self.rng.random() < 0.1 else f"t{self.n}"
            )
            payer, payee = self.rng.sample(PROVIDERS, 2)
            amt = self.rng.choice((1, 999, 5_000, 12_345, 20_000))
            fx = self.rng.random() < 0.3
            quote = self.rng.choice(self.quotes) if fx and self.quotes else None
            ident = self.rng.choice((None, "HK-A1", "HK-B2")) if fx else None
            timeout = self.rng.choice((1, 10, 30))
            specs.append((tid, payer, payee, amt, fx, quote, ident, timeout))
        reqs_e: list[ReserveRequest] = []
        reqs_s: list[ReserveRequest] = []
        for tid, payer, payee, amt, fx, quote, ident, timeout in specs:
            exp = self.clock.now + timedelta(seconds=timeout)
            src = Money(amt, "HKD")
            if fx:
                rate = self.eng.quotes[quote[0]].rate if quote else None
                dst = convert(src, rate, "CNY") if rate else Money(amt, "CNY")
                legs: tuple[Leg, ...] = (Leg(payer, "fx", src), Leg("fx", payee, dst))
                for reqs, qid in ((reqs_e, quote and quote[0]), (reqs_s, quote and quote[1])):
                    reqs.append(ReserveRequest(tid, legs, "hk-fps", "cn-ibps", exp, ident, qid))
            else:
                legs = (Leg(payer, payee, src),)
                for reqs in (reqs_e, reqs_s):
                    reqs.append(ReserveRequest(tid, legs, "hk-fps", "hk-fps", exp))
        got = await self.store.reserve(reqs_s)
        want = self.eng.reserve_batch(reqs_e)
        assert self._same_ids(_norm(got)) == _norm(want)
        self.ids.extend(d.transfer_id for d in got if d.ok)

    def _same_ids(self, decisions: list) -> list:  # type: ignore[type-arg]
        """Store quote ids are UUIDs, the engine's are short: name them the engine's way."""
        out = []
        for tid, ok, rej in decisions:
            if rej is not None:
                msg = rej.message
                for qe, qs in self.quotes:
                    msg = msg.replace(qs, qe)
                rej = type(rej)(rej.code, msg, rej.path)
            out.append((tid, ok, rej))
        return out

    async def end(self) -> None:
        if not self.ids:
            return
        live = [i for i in self.ids if self.eng.transfers[i].state.value == "RESERVED"]
        tid = self.rng.choice(live if live and self.rng.random() < 0.8 else self.ids)
        if self.rng.random() < 0.7:
            got, want = await self.store.commit(tid), self.eng.commit(tid)
        else:
            got, want = await self.store.abort(tid, "AC04"), self.eng.abort(tid, "AC04")
        assert got == want

    async def advance(self) -> None:
        self.clock.advance(self.rng.choice((0, 1, 5, 31, 3_600)))

    async def expire(self) -> None:
        assert sorted(await self.store.expire_due()) == sorted(self.eng.expire_due())

    async def close(self) -> None:
        got = await self.store.close_window("ops")
        want = self.eng.close_window("ops")
        assert got == want
        if got.settlement_id is not None:
            await self._same_settlement(got.settlement_id)
        assert await self.store.bilateral(got.window_id) == self.eng.bilateral(got.window_id)

    async def settle(self) -> None:
        pending = [
            s for s in self.eng.settlements.values() if s.state.value == "PENDING_SETTLEMENT"
        ]
        if not pending:
            return
        s = self.rng.choice(pending)
        if self.rng.random() < 0.2:
            got = await self.store.abort_settlement("finance", s.id, "test")
            assert _view(got) == _view(self.eng.abort_settlement("finance", s.id, "test"))
            return
        for ln in s.lines:
            if not ln.confirmed and self.rng.random() < 0.8:
                ref = f"R-{s.id}-{ln.participant_id}-{ln.currency}"
                args = ("finance", s.id, ln.participant_id, ln.currency, ref)
                assert _view(await self.store.confirm_settlement(*args)) == _view(
                    self.eng.confirm_settlement(*args)
                )
        with pytest.raises(ClearingError):
            await self.store.confirm_settlement("finance", s.id, "nobody", "HKD", "R")

    async def _same_settlement(self, sid: int) -> None:
        assert _view(await self.store.settlement(sid)) == _view(self.eng.settlement(sid))

    async def same_positions(self) -> None:
        got = {(p.participant_id, p.currency): p for p in await self.store.positions()}
        want = {(p.participant_id, p.currency): p for p in self.eng.positions()}
        for key in set(got) | set(want):
            g, w = got.get(key), want.get(key)
            assert (g.net if g else 0, g.reserved if g else 0) == (
                w.net if w else 0,
                w.reserved if w else 0,
            ), key


def _norm(decisions: list) -> list:  # type: ignore[type-arg]
    return [(d.transfer_id, d.ok, d.rejection) for d in decisions]


def _view(v):  # type: ignore[no-untyped-def]
    """A settlement view without timestamps of events (the store reads them back from SQL)."""
    return (
        v.id,
        v.state,
        v.window_ids,
        v.lines,
        tuple((e.state, e.actor, e.detail) for e in v.events),
    )


@pytest.mark.parametrize("seed_", [1, 2, 3])
async def test_store_answers_like_the_engine(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock, seed_: int
) -> None:
    await seed(db_pool, [(p, "provider") for p in PROVIDERS] + [("fx", "fx_provider")])
    pair = Pair(store, clock, random.Random(seed_))
    ops = [
        (pair.set_limits, 2), (pair.quote, 1), (pair.reserve, 6), (pair.end, 6),
        (pair.advance, 2), (pair.expire, 1), (pair.close, 1), (pair.settle, 1),
    ]  # fmt: skip
    for p in (*PROVIDERS, "fx"):
        for c in CCYS:
            await store.set_limits(p, c, 10**6, 200_000)
            pair.eng.set_limits(p, c, 10**6, 200_000)
    for _ in range(150):
        op = pair.rng.choices([o for o, _ in ops], weights=[w for _, w in ops])[0]
        await op()
        await pair.same_positions()
    async with db_pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT journal_id, currency FROM clearing_ledger_entries"
                " GROUP BY 1, 2 HAVING sum(amount) <> 0) x"
            )
            == 0
        )
        mismatched = await conn.fetch(
            """SELECT p.participant_id, p.currency, p.net, coalesce(l.total, 0) AS ledger
                 FROM clearing_positions p
                 LEFT JOIN (SELECT participant_id, currency, sum(amount) AS total
                              FROM clearing_ledger_entries GROUP BY 1, 2) l
                        ON l.participant_id = p.participant_id AND l.currency = p.currency
                WHERE p.net <> coalesce(l.total, 0)"""
        )
        assert mismatched == []
        states = dict(await conn.fetch("SELECT state, count(*) FROM clearing_transfers GROUP BY 1"))
    assert states.get("COMMITTED", 0) > 10  # the program did reach the interesting states
    assert states.get("ABORTED", 0) + states.get("EXPIRED", 0) > 0
