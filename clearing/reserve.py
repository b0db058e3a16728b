"""Reservation decisions for a batch of transfers, in arrival order.

The store gathers concurrent requests into one batch, locks every position row the batch may
touch, and loads the state below; `decide` then walks the requests in the order they arrived
and applies each accepted one to the working copy before looking at the next, so a batch gives
exactly the answers the same requests would get one by one. Checks, in order of precedence:
structure, corridor (currencies, hours, identity, per-transaction limit), duplicate id
(already stored, or repeated in the batch), participants, corridor daily/yearly usage, FX quote, caps of every leg. A rejected request
changes nothing; an accepted one reserves every leg or none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from clearing.corridors import (
    IDENTITY_CHARS_MAX,
    CorridorRule,
    CorridorRules,
    check_static,
    check_usage,
    identity_hash,
)
from clearing.fx import FX_PAIRS, check_fx
from clearing.model import SCHEMES
from clearing.ports import LEGS_MAX, Quote, ReserveDecision, ReserveRequest
from clearing.positions import Position, cap_rejection
from clearing.reasons import Reason, Rejection

PosKey = tuple[str, str]  # (participant, currency)
UsageKey = tuple[str, str, str]  # (limit group, identity hash, period "D2025-06-22" | "Y2025")
TRANSFER_ID_CHARS_MAX = 64
BATCH_MAX = 10_000  # requests decided in one batch (one transaction)
_PATH_AMT = "CdtTrfTxInf/IntrBkSttlmAmt"
_PATH_ID = "CdtTrfTxInf/PmtId"


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    status: str = "active"  # "active" | "suspended"
    role: str = "provider"  # "provider" | "fx_provider"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request after the checks that need no state, with its corridor counting keys."""

    request: ReserveRequest
    rejection: Rejection | None = None
    rule: CorridorRule | None = None
    identity_hash: str | None = None
    counted: int = 0  # amount counted against the corridor limits (limit currency minor units)
    usage_keys: tuple[UsageKey, UsageKey] | None = None


@dataclass(slots=True)
class BatchState:
    """Everything the batch may read, loaded (and locked) by the caller."""

    positions: dict[PosKey, Position]
    participants: Mapping[str, Participant]
    usage: dict[UsageKey, int] = field(default_factory=dict)
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    existing_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Reservation:
    """An accepted request: what the store persists."""

    prepared: Prepared

    @property
    def request(self) -> ReserveRequest:
        return self.prepared.request


@dataclass(slots=True)
class BatchPlan:
    decisions: list[ReserveDecision]
    accepted: list[Reservation]
    reserved_delta: dict[PosKey, int]
    usage_delta: dict[UsageKey, int]


def _shape(req: ReserveRequest) -> Rejection | None:
    if not req.transfer_id or len(req.transfer_id) > TRANSFER_ID_CHARS_MAX:
        return Rejection(Reason.FF01, "transfer id missing or too long", "CdtTrfTxInf/PmtId")
    if req.source_scheme not in SCHEMES or req.destination_scheme not in SCHEMES:
        return Rejection(Reason.FF01, "unknown scheme", "GrpHdr")
    if not 1 <= len(req.legs) <= LEGS_MAX:
        return Rejection(Reason.FF01, f"a transfer has 1 or {LEGS_MAX} legs", "CdtTrfTxInf")
    if req.debtor_identity is not None and len(req.debtor_identity) > IDENTITY_CHARS_MAX:
        return Rejection(Reason.FF01, "debtor identification too long", "CdtTrfTxInf/Dbtr/Id")
    for i, leg in enumerate(req.legs, start=1):
        if leg.amount.minor <= 0:
            code = Reason.AM01 if leg.amount.minor == 0 else Reason.AM12
            return Rejection(code, f"leg {i}: amount must be positive", _PATH_AMT)
        if leg.payer == leg.payee:
            return Rejection(Reason.AG01, f"leg {i}: payer and payee are the same", "CdtTrfTxInf")
    if len(req.legs) == 2:
        a, b = req.legs
        pair = (a.amount.currency, b.amount.currency)
        if a.payee != b.payer:
            return Rejection(
                Reason.FF01, "conversion legs must meet at the FX provider", "CdtTrfTxInf"
            )
        if pair not in FX_PAIRS:
            return Rejection(Reason.AM03, f"no conversion {pair[0]}->{pair[1]}", _PATH_AMT)
    return None


def prepare(
    requests: Sequence[ReserveRequest], *, rules: CorridorRules, identity_key: bytes, now: datetime
) -> list[Prepared]:
    if len(requests) > BATCH_MAX:
        raise ValueError(f"at most {BATCH_MAX} requests per batch, got {len(requests)}")
    out: list[Prepared] = []
    for req in requests:
        rej = _shape(req)
        if rej is not None:
            out.append(Prepared(req, rej))
            continue
        src, dst = req.legs[0].amount, req.legs[-1].amount
        if rules.closed(req.source_scheme, req.destination_scheme):
            rej = Rejection(
                Reason.AG01,
                f"no corridor from {req.source_scheme} to {req.destination_scheme}",
                "CdtTrfTxInf/CdtrAgt",
            )
            out.append(Prepared(req, rej))
            continue
        rule = rules.lookup(req.source_scheme, req.destination_scheme)
        if rule is None:
            out.append(Prepared(req))
            continue
        has_id = bool(req.debtor_identity and req.debtor_identity.strip())
        rej = check_static(rule, (src.currency, dst.currency), src, has_id, now)
        if rej is not None or not rule.counts_usage:
            out.append(Prepared(req, rej, rule))
            continue
        assert req.debtor_identity is not None
        h = identity_hash(identity_key, req.debtor_identity)
        day, year = rule.periods(now)
        keys = ((rule.group, h, day), (rule.group, h, year))
        out.append(Prepared(req, None, rule, h, rule.counted(src), keys))
    return out


def keys_needed(
    prepared: Sequence[Prepared],
) -> tuple[set[PosKey], set[UsageKey], set[str], set[str]]:
    """Position keys to lock, usage keys to lock, quote ids and participant ids to load."""
    pos: set[PosKey] = set()
    usage: set[UsageKey] = set()
    quotes: set[str] = set()
    parts: set[str] = set()
    for p in prepared:
        if p.rejection is not None:
            continue
        req = p.request
        for leg in req.legs:
            pos.add((leg.payer, leg.amount.currency))
            parts.add(leg.payer)
            parts.add(leg.payee)
        if p.usage_keys is not None:
            usage.update(p.usage_keys)
        if len(req.legs) == 2 and req.quote_id is not None:
            quotes.add(req.quote_id)
    return pos, usage, quotes, parts


def _participants(req: ReserveRequest, parts: Mapping[str, Participant]) -> Rejection | None:
    for i, leg in enumerate(req.legs, start=1):
        payer, payee = parts.get(leg.payer), parts.get(leg.payee)
        if payer is None or payer.status != "active":
            state = "unknown" if payer is None else payer.status
            return Rejection(
                Reason.AG01, f"leg {i}: payer {leg.payer} is {state}", "CdtTrfTxInf/DbtrAgt"
            )
        if payee is None:
            return Rejection(
                Reason.RC10, f"leg {i}: unknown payee {leg.payee}", "CdtTrfTxInf/CdtrAgt"
            )
        if payee.status != "active":
            return Rejection(
                Reason.AG01, f"leg {i}: payee {leg.payee} is {payee.status}", "CdtTrfTxInf/CdtrAgt"
            )
    if len(req.legs) == 2 and parts[req.legs[0].payee].role != "fx_provider":
        return Rejection(
            Reason.AG01, f"{req.legs[0].payee} is not an FX provider", "CdtTrfTxInf/XchgRate"
        )
    return None


def decide(prepared: Sequence[Prepared], state: BatchState, now: datetime) -> BatchPlan:
    """Decide each request in arrival order, applying accepted ones to `state` as it goes."""
    plan = BatchPlan([], [], defaultdict(int), defaultdict(int))
    in_batch: set[str] = set()
    for p in prepared:
        tid = p.request.transfer_id
        rej = p.rejection
        if rej is None and tid in in_batch:
            rej = Rejection(Reason.AM05, f"transfer {tid} appears twice in one batch", _PATH_ID)
        in_batch.add(tid)
        rej = rej or _decide_one(p, state, now)
        if rej is not None:
            plan.decisions.append(ReserveDecision(tid, False, rej))
            continue
        for leg in p.request.legs:
            key = (leg.payer, leg.amount.currency)
            state.positions[key].reserved += leg.amount.minor
            plan.reserved_delta[key] += leg.amount.minor
        if p.usage_keys is not None:
            for k in p.usage_keys:
                state.usage[k] = state.usage.get(k, 0) + p.counted
                plan.usage_delta[k] += p.counted
        state.existing_ids.add(tid)
        plan.accepted.append(Reservation(p))
        plan.decisions.append(ReserveDecision(tid, True))
    return plan


def _decide_one(p: Prepared, state: BatchState, now: datetime) -> Rejection | None:
    req = p.request
    if req.transfer_id in state.existing_ids:
        return Rejection(
            Reason.AM05, f"transfer {req.transfer_id} is already known", "CdtTrfTxInf/PmtId"
        )
    rej = _participants(req, state.participants)
    if rej is not None:
        return rej
    if p.usage_keys is not None and p.rule is not None:
        day, year = p.usage_keys
        rej = check_usage(p.rule, p.counted, state.usage.get(day, 0), state.usage.get(year, 0))
        if rej is not None:
            return rej
    if len(req.legs) == 2:
        quote = state.quotes.get(req.quote_id) if req.quote_id else None
        rej = check_fx(req.legs, req.quote_id, quote, now)
        if rej is not None:
            return rej
    for i, leg in enumerate(req.legs, start=1):
        pos = state.positions[(leg.payer, leg.amount.currency)]
        if not pos.fits(leg.amount.minor):
            return cap_rejection(leg.payer, pos, leg.amount, f"{_PATH_AMT}[leg {i}]")
    return None
