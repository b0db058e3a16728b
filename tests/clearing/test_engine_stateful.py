"""The in-memory engine against the reference model, on random operation sequences.

Operations: reserve (batches mixing domestic transfers, conversions and duplicates), commit,
abort, expire, clock moves (across local midnights), cap and cover changes, quotes, window
close, settlement confirm and abort. After every step both must agree on every answer, and
the invariants hold: no position above its effective cap after a reservation, nets summing to
zero per currency, reserved amounts equal to the legs in flight, every committed transfer in
exactly one window, ledger balances equal to positions.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from clearing.corridors import CorridorRule, CorridorRules
from clearing.engine import MemoryEngine
from clearing.fx import convert
from clearing.ledger import balances, sums
from clearing.model import TransferState
from clearing.money import Money
from clearing.ports import Leg, ReserveRequest, SettlementState
from tests.clearing.refmodel import RefModel, RefRequest

PROVIDERS = ("pa", "pb", "pc")
FX = "fx"
DAILY_MAX = 10_000
YEARLY_MAX = 25_000
START = datetime(2025, 12, 31, 14, 0, tzinfo=UTC)  # 22:00 in Hong Kong, a day before new year
RULES = CorridorRules(
    [
        CorridorRule(
            name="north",
            source_scheme="hk-fps",
            destination_scheme="cn-ibps",
            source_currencies=frozenset({"HKD"}),
            destination_currencies=frozenset({"CNY"}),
            tz="Asia/Hong_Kong",
            identity_required=True,
            limit_currency="HKD",
            daily_max_minor=DAILY_MAX,
            yearly_max_minor=YEARLY_MAX,
        )
    ]
)

# Round values make exact boundaries (at the cap, at the corridor limit) likely.
amounts = st.one_of(
    st.sampled_from((1, 4_999, 5_000, 10_000, 25_000)), st.integers(min_value=1, max_value=40_000)
)
caps = st.one_of(
    st.sampled_from((0, 10_000, 25_000, 50_000, 100_000)),
    st.integers(min_value=0, max_value=200_000),
)


class EngineVsModel(RuleBasedStateMachine):
    ids = Bundle("ids")
    quotes = Bundle("quotes")

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.engine = MemoryEngine(lambda: self.now, identity_key=b"k", rules=RULES)
        for p in PROVIDERS:
            self.engine.add_participant(p)
        self.engine.add_participant(FX, role="fx_provider")
        self.model = RefModel(DAILY_MAX, YEARLY_MAX)
        self.quote_expiry: dict[str, datetime] = {}
        self.n = 0

    # -- set-up and clock ------------------------------------------------------------------

    @initialize(limits=st.lists(st.tuples(caps, caps), min_size=8, max_size=8))
    def initial_limits(self, limits: list[tuple[int, int]]) -> None:
        keys = [(p, c) for p in (*PROVIDERS, FX) for c in ("HKD", "CNY")]
        for (p, c), (ndc, cover) in zip(keys, limits, strict=True):
            self.set_limits(p, c, ndc, cover)

    @rule(
        p=st.sampled_from((*PROVIDERS, FX)),
        ccy=st.sampled_from(("HKD", "CNY")),
        ndc=caps,
        cover=caps,
    )
    def set_limits(self, p: str, ccy: str, ndc: int, cover: int) -> None:
        view = self.engine.set_limits(p, ccy, ndc, cover)
        self.model.caps[(p, ccy)] = (ndc, cover)
        assert view.effective_cap == min(ndc, cover)

    @rule(
        seconds=st.one_of(
            st.sampled_from((0, 1, 29, 30, 3_600)), st.integers(min_value=0, max_value=50_000)
        )
    )
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(target=quotes, ttl=st.integers(min_value=1, max_value=120))
    def new_quote(self, ttl: int) -> str:
        q = self.engine.create_quote("HKD", "CNY", ttl_s=ttl)
        assert q.fx_provider == FX and q.expires_at == self.now + timedelta(seconds=ttl)
        self.quote_expiry[q.id] = q.expires_at
        return q.id

    # -- transfers ------------------------------------------------------------------------

    @rule(
        target=ids,
        specs=st.lists(
            st.tuples(
                st.sampled_from(PROVIDERS),
                st.sampled_from(PROVIDERS),
                amounts,
                st.booleans(),  # conversion?
                st.sampled_from((None, "ID-1", "ID-2")),
                st.integers(min_value=1, max_value=60),  # timeout
                st.booleans(),  # repeat the previous id in this batch?
            ),
            min_size=1,
            max_size=4,
        ),
        quote=st.one_of(st.none(), quotes),
    )
    def reserve(self, specs: list, quote: str | None) -> list[str]:  # type: ignore[type-arg]
        reqs: list[ReserveRequest] = []
        refs: list[RefRequest] = []
        for payer, payee, amt, fx, identity, timeout, repeat in specs:
            tid = reqs[-1].transfer_id if repeat and reqs else f"t{self.n}"
            self.n += 1
            exp = self.now + timedelta(seconds=timeout)
            src = Money(amt, "HKD")
            if fx:
                q = self.engine.quotes[quote] if quote else None
                dst = convert(src, q.rate, "CNY") if q else Money(amt, "CNY")
                legs: tuple[Leg, ...] = (Leg(payer, FX, src), Leg(FX, payee, dst))
                req = ReserveRequest(tid, legs, "hk-fps", "cn-ibps", exp, identity, quote)
            else:
                if payer == payee:
                    continue
                legs = (Leg(payer, payee, src),)
                req = ReserveRequest(tid, legs, "hk-fps", "hk-fps", exp)
            reqs.append(req)
            ref_legs = [
                (leg.payer, leg.payee, leg.amount.currency, leg.amount.minor) for leg in legs
            ]
            qexp = self.quote_expiry.get(quote) if (fx and quote) else None
            refs.append((tid, ref_legs, identity if fx else None, qexp, exp))
        if not reqs:
            return []
        got = self.engine.reserve_batch(reqs)
        want = self.model.reserve(refs, self.now)
        assert [(d.ok, d.rejection.code.value if d.rejection else None) for d in got] == want
        for req, (_ok, code) in zip(reqs, want, strict=True):
            event(f"reserve {len(req.legs)} legs: {code or 'accepted'}")
        for req, d in zip(reqs, got, strict=True):
            if d.ok:  # the cap held at the moment of acceptance
                for leg in req.legs:
                    pos = self.engine.position(leg.payer, leg.amount.currency)
                    assert pos.net + pos.reserved <= pos.effective_cap
        return [r.transfer_id for r, d in zip(reqs, got, strict=True) if d.ok]

    def _end(self, tids: list[str], kind: str) -> None:
        for tid in tids:
            if kind == "commit":
                out = self.engine.commit(tid)
            else:
                out = self.engine.abort(tid, "AC01")
            state, changed = self.model.end(tid, kind, self.now)
            event(f"{kind} -> {state} changed={changed}")
            assert (out.state.value if out.state else None, out.changed) == (state, changed)
            if out.state is TransferState.COMMITTED:
                assert out.window_id == self.model.transfers[tid].window

    @rule(tids=ids)
    def commit(self, tids: list[str]) -> None:
        self._end(tids, "commit")

    @rule(tids=ids)
    def abort(self, tids: list[str]) -> None:
        self._end(tids, "abort")

    @rule(tids=consumes(ids))
    def commit_twice(self, tids: list[str]) -> None:
        self._end(tids, "commit")
        self._end(tids, "commit")  # the second answer repeats the final state

    @rule()
    def expire_due(self) -> None:
        expired = self.model.expire_due(self.now)
        assert set(self.engine.expire_due()) == expired
        event(f"expired {min(len(expired), 2)}")

    @rule(tid=st.sampled_from(("unknown-1", "unknown-2")))
    def commit_unknown(self, tid: str) -> None:
        out = self.engine.commit(tid)
        assert out.state is None and not out.changed

    # -- windows and settlement ---------------------------------------------------------------

    @rule()
    def close_window(self) -> None:
        wc = self.engine.close_window("ops")
        old, sid = self.model.close()
        assert (wc.window_id, wc.settlement_id) == (old, sid)
        assert wc.next_window_id == self.model.window
        for cn in wc.netting:
            assert sum(ln.net for ln in cn.lines) == 0
            paid = sum(i.amount.minor for i in cn.instructions if i.direction == "pay")
            received = sum(i.amount.minor for i in cn.instructions if i.direction == "receive")
            assert paid == received == cn.net_minor
        if sid is not None:
            view = self.engine.settlement(sid)
            lines = {(ln.participant_id, ln.currency): ln.net for ln in view.lines}
            assert lines == self.model.settlements[sid].lines
            assert view.state.value == self.model.settlements[sid].state

    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        pending = [
            (sid, k)
            for sid, s in self.model.settlements.items()
            if s.state == "PENDING_SETTLEMENT"
            for k, v in s.lines.items()
            if v != 0 and k not in s.confirmed
        ]
        if not pending:
            return
        sid, (p, c) = data.draw(st.sampled_from(pending))
        ref = f"REF-{sid}-{p}-{c}"
        view = self.engine.confirm_settlement("finance", sid, p, c, ref)
        assert view.state.value == self.model.confirm(sid, (p, c), ref)
        event(f"confirm -> {view.state.value}")
        again = self.engine.confirm_settlement("finance", sid, p, c, ref)
        assert again == view  # idempotent

    @rule()
    def confirm_all(self) -> None:
        for sid, s in list(self.model.settlements.items()):
            if s.state != "PENDING_SETTLEMENT":
                continue
            for (p, c), v in sorted(s.lines.items()):
                if v != 0 and (p, c) not in s.confirmed:
                    view = self.engine.confirm_settlement("finance", sid, p, c, f"R{sid}{p}{c}")
                    assert view.state.value == self.model.confirm(sid, (p, c), f"R{sid}{p}{c}")
            assert self.engine.settlement(sid).state is SettlementState.SETTLED
            event("settled")

    @rule(data=st.data())
    def abort_settlement(self, data: st.DataObject) -> None:
        if not self.model.settlements:
            return
        sid = data.draw(st.sampled_from(sorted(self.model.settlements)))
        if self.model.settlements[sid].state == "SETTLED":
            return
        view = self.engine.abort_settlement("finance", sid, "bank holiday")
        assert view.state.value == self.model.abort_settlement(sid)
        assert view.state is SettlementState.ABORTED

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def positions_agree(self) -> None:
        keys = set(self.model.net) | set(self.model.reserved) | set(self.engine.net)
        for key in keys:
            assert self.engine.net[key] == self.model.net[key], key
            assert self.engine.reserved[key] == self.model.reserved[key], key

    @invariant()
    def nets_sum_to_zero_per_currency(self) -> None:
        total: dict[str, int] = defaultdict(int)
        for (_, ccy), v in self.engine.net.items():
            total[ccy] += v
        assert all(v == 0 for v in total.values()), total

    @invariant()
    def reserved_equals_legs_in_flight(self) -> None:
        in_flight: dict[tuple[str, str], int] = defaultdict(int)
        for t in self.engine.transfers.values():
            if t.state is TransferState.RESERVED:
                for leg in t.request.legs:
                    in_flight[(leg.payer, leg.amount.currency)] += leg.amount.minor
        for key, v in self.engine.reserved.items():
            assert v == in_flight[key], key

    @invariant()
    def ledger_matches_positions_and_balances(self) -> None:
        assert all(v == 0 for v in sums(self.engine.entries).values())
        bal = balances(self.engine.entries)
        for key, v in self.engine.net.items():
            assert bal.get(key, 0) == v, key
        journals = [e.journal_id for e in self.engine.entries if not e.journal_id.startswith("s")]
        committed = {
            i for i, t in self.engine.transfers.items() if t.state is TransferState.COMMITTED
        }
        assert set(journals) == committed  # every committed transfer posted, nothing else

    @invariant()
    def each_committed_transfer_in_one_window(self) -> None:
        per_window: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for t in self.engine.transfers.values():
            committed = t.state is TransferState.COMMITTED
            assert (t.window_id is not None) == committed
            if t.window_id is not None:
                for leg in t.request.legs:
                    per_window[(t.window_id, leg.payer, leg.amount.currency)][0] += leg.amount.minor
                    per_window[(t.window_id, leg.payee, leg.amount.currency)][1] += leg.amount.minor
        assert {k: tuple(v) for k, v in per_window.items()} == {
            k: tuple(v) for k, v in self.engine.totals.items() if v != [0, 0]
        }


EngineVsModel.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineVsModel = EngineVsModel.TestCase
