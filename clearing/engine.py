"""The clearing engine in memory: the whole port over dicts, with an injected clock.

Same decisions as the database store (both call `reserve.decide`, `twophase.transition`,
`effects.effects`, `netting` and `settlement`), without I/O. It is what the property tests
drive against a plain reference model, what the store is compared with in differential
tests, and a convenient engine for demos and simulations. Not thread-safe; single process.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from clearing import settlement as st
from clearing.corridors import DEFAULT_RULES, CorridorRules
from clearing.effects import Effects, Ending, effects
from clearing.fx import DEFAULT_RATES, QUOTE_TTL_S_DEFAULT, Rate, make_quote
from clearing.ledger import Entry, leg_tuples, settlement_entries
from clearing.model import TransferState
from clearing.netting import DEFAULT_SETTLEMENT_SYSTEMS, BilateralNet, bilateral, net_by_currency
from clearing.ports import (
    ClearingError,
    Outcome,
    PositionView,
    Quote,
    ReserveDecision,
    ReserveRequest,
    SettlementState,
    SettlementView,
    WindowClose,
    WindowState,
    WindowTotal,
)
from clearing.positions import Position, check_limits
from clearing.reserve import BatchState, Participant, PosKey, UsageKey, decide, keys_needed, prepare
from clearing.twophase import Event, transition

Clock = Callable[[], datetime]
EXPIRE_LIMIT_MAX = 10_000


@dataclass(slots=True)
class StoredTransfer:
    request: ReserveRequest
    state: TransferState
    reserved_at: datetime
    usage_keys: tuple[UsageKey, ...] = ()
    counted: int = 0
    window_id: int | None = None
    finished_at: datetime | None = None
    reason: str | None = None


@dataclass(slots=True)
class Window:
    id: int
    state: WindowState
    opened_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    settlement_id: int | None = None


class MemoryEngine:
    def __init__(
        self,
        clock: Clock,
        *,
        identity_key: bytes,
        rules: CorridorRules = DEFAULT_RULES,
        rates: Iterable[Rate] = DEFAULT_RATES,
        settlement_systems: Mapping[str, str] = DEFAULT_SETTLEMENT_SYSTEMS,
        quote_ttl_s: int = QUOTE_TTL_S_DEFAULT,
    ) -> None:
        self.clock = clock
        self.identity_key = identity_key
        self.rules = rules
        self.settlement_systems = dict(settlement_systems)
        self.quote_ttl_s = quote_ttl_s
        self.participants: dict[str, Participant] = {}
        self.limits: dict[PosKey, tuple[int, int]] = {}
        self.net: dict[PosKey, int] = defaultdict(int)
        self.reserved: dict[PosKey, int] = defaultdict(int)
        self.transfers: dict[str, StoredTransfer] = {}
        self.entries: list[Entry] = []
        self.usage: dict[UsageKey, int] = defaultdict(int)
        self.rates: dict[tuple[str, str], Rate] = {(r.source, r.target): r for r in rates}
        self.quotes: dict[str, Quote] = {}
        self.totals: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.settlements: dict[int, SettlementView] = {}
        self._ids = itertools.count(1)
        now = clock()
        self.windows: dict[int, Window] = {1: Window(1, WindowState.OPEN, now)}
        self.open_window_id = 1

    # -- directory and limits -------------------------------------------------------------

    def add_participant(self, pid: str, role: str = "provider", status: str = "active") -> None:
        self.participants[pid] = Participant(pid, status, role)

    def set_limits(
        self, pid: str, currency: str, net_debit_cap: int, liquidity_cover: int
    ) -> PositionView:
        check_limits(net_debit_cap, liquidity_cover)
        self.limits[(pid, currency)] = (net_debit_cap, liquidity_cover)
        return self.position(pid, currency)

    def position(self, pid: str, currency: str) -> PositionView:
        ndc, cover = self.limits.get((pid, currency), (0, 0))
        key = (pid, currency)
        return PositionView(pid, currency, self.net[key], self.reserved[key], ndc, cover)

    def positions(self, pid: str | None = None) -> list[PositionView]:
        keys = (
            set(self.limits)
            | {k for k, v in self.net.items() if v}
            | {k for k, v in self.reserved.items() if v}
        )
        return [self.position(p, c) for p, c in sorted(keys) if pid is None or p == pid]

    # -- FX -------------------------------------------------------------------------------

    def set_rate(self, rate: Rate) -> None:
        self.rates[(rate.source, rate.target)] = rate

    def create_quote(
        self, source: str, target: str, *, fx_provider: str | None = None, ttl_s: int | None = None
    ) -> Quote:
        rate = self.rates.get((source, target))
        if rate is None:
            raise ClearingError(f"no rate for {source}->{target}")
        if fx_provider is None:
            fx = sorted(p.id for p in self.participants.values() if p.role == "fx_provider")
            if not fx:
                raise ClearingError("no FX provider")
            fx_provider = fx[0]
        q = make_quote(
            f"q{next(self._ids)}", rate, fx_provider, self.clock(), ttl_s or self.quote_ttl_s
        )
        self.quotes[q.id] = q
        return q

    # -- two-phase transfers ----------------------------------------------------------------

    def reserve_batch(self, requests: Sequence[ReserveRequest]) -> list[ReserveDecision]:
        now = self.clock()
        prepared = prepare(requests, rules=self.rules, identity_key=self.identity_key, now=now)
        pos_keys, _, _, _ = keys_needed(prepared)
        positions = {}
        for key in pos_keys:
            ndc, cover = self.limits.get(key, (0, 0))
            positions[key] = Position(self.net[key], self.reserved[key], ndc, cover)
        state = BatchState(
            positions, self.participants, dict(self.usage), self.quotes, set(self.transfers)
        )
        plan = decide(prepared, state, now)
        for key, delta in plan.reserved_delta.items():
            self.reserved[key] += delta
        for ukey, delta in plan.usage_delta.items():
            self.usage[ukey] += delta
        for r in plan.accepted:
            p = r.prepared
            self.transfers[r.request.transfer_id] = StoredTransfer(
                r.request, TransferState.RESERVED, now, p.usage_keys or (), p.counted
            )
        return plan.decisions

    def commit(self, transfer_id: str) -> Outcome:
        return self._end([transfer_id], Event.COMMIT, None)[0]

    def abort(self, transfer_id: str, reason: str) -> Outcome:
        return self._end([transfer_id], Event.ABORT, reason)[0]

    def expire_due(self, now: datetime | None = None, limit: int = 1000) -> list[str]:
        now = now or self.clock()
        limit = min(limit, EXPIRE_LIMIT_MAX)
        due = sorted(
            (t.request.expires_at, tid)
            for tid, t in self.transfers.items()
            if t.state is TransferState.RESERVED and t.request.expires_at <= now
        )[:limit]
        ids = [tid for _, tid in due]
        outs = self._end(ids, Event.EXPIRE, None, now)
        return [o.transfer_id for o in outs if o.changed]

    def _end(
        self, ids: Sequence[str], event: Event, reason: str | None, now: datetime | None = None
    ) -> list[Outcome]:
        now = now or self.clock()
        endings: list[Ending] = []
        changed: set[str] = set()
        for tid in ids:
            t = self.transfers.get(tid)
            if t is None or tid in changed:
                continue
            new = transition(t.state, event, t.request.expires_at, now)
            if new is None:
                continue
            t.state, t.finished_at = new, now
            t.reason = reason if new is TransferState.ABORTED else None
            if new is TransferState.COMMITTED:
                t.window_id = self.open_window_id
            changed.add(tid)
            endings.append(Ending(tid, leg_tuples(t.request.legs), new, t.usage_keys, t.counted))
        self._apply(effects(endings))
        outs = []
        for tid in ids:
            t = self.transfers.get(tid)
            if t is None:
                outs.append(Outcome(tid, None, False))
                continue
            first = tid in changed
            changed.discard(tid)
            outs.append(Outcome(tid, t.state, first, t.window_id, t.reason))
        return outs

    def _apply(self, fx: Effects) -> None:
        for key, d in fx.reserved.items():
            self.reserved[key] += d
            assert self.reserved[key] >= 0, f"reserved below zero for {key}"
        for key, d in fx.net.items():
            self.net[key] += d
        w = self.open_window_id
        for (pid, ccy), d in fx.debits.items():
            self.totals[(w, pid, ccy)][0] += d
        for (pid, ccy), c in fx.credits.items():
            self.totals[(w, pid, ccy)][1] += c
        for ukey, d in fx.usage.items():
            self.usage[ukey] += d
        self.entries.extend(fx.entries)

    # -- windows and settlement ---------------------------------------------------------------

    def window_totals(self, window_ids: Iterable[int]) -> list[WindowTotal]:
        wanted = set(window_ids)
        return [
            WindowTotal(pid, ccy, d, c)
            for (w, pid, ccy), (d, c) in sorted(self.totals.items())
            if w in wanted
        ]

    def close_window(self, actor: str) -> WindowClose:
        st.check_actor(actor)
        now = self.clock()
        old = self.windows[self.open_window_id]
        old.state, old.closed_at, old.closed_by = WindowState.CLOSED, now, actor
        new_id = max(self.windows) + 1
        self.windows[new_id] = Window(new_id, WindowState.OPEN, now)
        self.open_window_id = new_id
        wids = tuple(
            sorted(
                w.id
                for w in self.windows.values()
                if w.id == old.id or w.state is WindowState.ABORTED
            )
        )
        totals = self.window_totals(wids)
        netting = tuple(net_by_currency(totals, self.settlement_systems))
        lines = st.lines_from_totals(totals)
        if not lines:
            old.state = WindowState.SETTLED
            return WindowClose(old.id, new_id, now, None, (old.id,), netting)
        sid = len(self.settlements) + 1
        event = st.created(actor, now, wids)
        view = SettlementView(sid, SettlementState.PENDING_SETTLEMENT, wids, lines, (event,))
        for wid in wids:
            self.windows[wid].state, self.windows[wid].settlement_id = WindowState.CLOSED, sid
        self.settlements[sid] = view
        if st.settles_at_once(lines):
            self._settled(view, actor, now)
        return WindowClose(old.id, new_id, now, sid, wids, netting)

    def settlement(self, sid: int) -> SettlementView:
        try:
            return self.settlements[sid]
        except KeyError:
            raise ClearingError(f"unknown settlement {sid}") from None

    def confirm_settlement(
        self, actor: str, sid: int, participant_id: str, currency: str, reference: str
    ) -> SettlementView:
        change = st.confirm(
            self.settlement(sid), participant_id, currency, reference, actor, self.clock()
        )
        self.settlements[sid] = change.view
        if change.settled:
            self._settled(change.view, actor, self.clock(), record=False)
        return self.settlements[sid]

    def _settled(
        self, view: SettlementView, actor: str, now: datetime, record: bool = True
    ) -> None:
        for key, d in st.position_deltas(view.lines).items():
            self.net[key] += d
        self.entries.extend(settlement_entries(view.id, view.lines))
        for wid in view.window_ids:
            self.windows[wid].state = WindowState.SETTLED
        if record:
            ev = st.SettlementEvent(SettlementState.SETTLED.value, actor, now, "nothing to pay")
            view = replace(view, state=SettlementState.SETTLED, events=(*view.events, ev))
        self.settlements[view.id] = view

    def abort_settlement(self, actor: str, sid: int, reason: str = "") -> SettlementView:
        change = st.abort(self.settlement(sid), actor, self.clock(), reason)
        self.settlements[sid] = change.view
        if change.event is not None:
            for wid in change.view.window_ids:
                self.windows[wid].state = WindowState.ABORTED
        return change.view

    def bilateral(self, window_id: int) -> list[BilateralNet]:
        return bilateral(
            (leg.payer, leg.payee, leg.amount.currency, leg.amount.minor)
            for t in self.transfers.values()
            if t.window_id == window_id
            for leg in t.request.legs
        )
