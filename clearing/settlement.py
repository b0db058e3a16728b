"""Theory of operation: the settlement of closed windows.

Closing a window creates a settlement in PENDING_SETTLEMENT holding one line per participant
and currency: its net (credits minus debits) over the window, plus any earlier windows whose
settlement was aborted. Finance settles each line outside Baygate (net debtors pay into the
currency's settlement system, net creditors are paid out) and confirms it with the payment
reference. When every line is confirmed the settlement is SETTLED and each participant's net
position is reduced by what was settled. ABORTED leaves positions exactly as they were (they
still carry the windows' obligations) and returns the windows to the pool, so the next close
settles them. Lines with a zero net need no payment and count as confirmed.

    PENDING_SETTLEMENT --confirm (last line)--> SETTLED
    PENDING_SETTLEMENT --abort----------------> ABORTED

SETTLED and ABORTED are final. Every change is recorded with who and when.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from clearing.netting import net_lines
from clearing.ports import (
    ClearingError,
    SettlementEvent,
    SettlementLine,
    SettlementState,
    SettlementView,
    WindowTotal,
)

REFERENCE_CHARS_MAX = 35  # an ISO 20022 Max35Text reference
ACTOR_CHARS_MAX = 64
DETAIL_CHARS_MAX = 500


@dataclass(frozen=True, slots=True)
class Change:
    view: SettlementView
    event: SettlementEvent | None  # None: the request changed nothing (idempotent repeat)
    settled: bool = False


def lines_from_totals(totals: Iterable[WindowTotal]) -> tuple[SettlementLine, ...]:
    return tuple(SettlementLine(n.participant_id, n.currency, n.net) for n in net_lines(totals))


def created(actor: str, now: datetime, window_ids: Iterable[int]) -> SettlementEvent:
    """The first event of a settlement: which windows it settles."""
    detail = "windows " + ",".join(str(w) for w in window_ids)
    return SettlementEvent(SettlementState.PENDING_SETTLEMENT.value, actor, now, detail)


def check_actor(actor: str) -> None:
    if not actor or len(actor) > ACTOR_CHARS_MAX:
        raise ClearingError(f"actor must be 1 to {ACTOR_CHARS_MAX} characters")


def confirm(
    view: SettlementView,
    participant_id: str,
    currency: str,
    reference: str,
    actor: str,
    now: datetime,
) -> Change:
    """Record one participant's payment; the last confirmation settles."""
    check_actor(actor)
    if not reference or len(reference) > REFERENCE_CHARS_MAX:
        raise ClearingError(f"reference must be 1 to {REFERENCE_CHARS_MAX} characters")
    idx = next(
        (
            i
            for i, ln in enumerate(view.lines)
            if ln.participant_id == participant_id and ln.currency == currency
        ),
        None,
    )
    if idx is None:
        raise ClearingError(f"settlement {view.id} has no line for {participant_id} {currency}")
    line = view.lines[idx]
    if line.reference == reference:
        return Change(view, None)
    if view.state is not SettlementState.PENDING_SETTLEMENT:
        raise ClearingError(f"settlement {view.id} is {view.state}")
    if line.net == 0:
        raise ClearingError(f"{participant_id} {currency} has nothing to settle")
    if line.reference is not None:
        raise ClearingError(
            f"{participant_id} {currency} already confirmed with reference {line.reference}"
        )
    lines = list(view.lines)
    lines[idx] = replace(line, reference=reference, confirmed_by=actor, confirmed_at=now)
    settled = all(ln.confirmed for ln in lines)
    state = SettlementState.SETTLED if settled else view.state
    detail = f"{participant_id} {currency} {reference}"
    event = SettlementEvent("SETTLED" if settled else "CONFIRMED", actor, now, detail)
    new = replace(view, state=state, lines=tuple(lines), events=(*view.events, event))
    return Change(new, event, settled)


def abort(view: SettlementView, actor: str, now: datetime, reason: str = "") -> Change:
    check_actor(actor)
    if view.state is SettlementState.ABORTED:
        return Change(view, None)
    if view.state is not SettlementState.PENDING_SETTLEMENT:
        raise ClearingError(f"settlement {view.id} is {view.state} and cannot be aborted")
    event = SettlementEvent(SettlementState.ABORTED.value, actor, now, reason[:DETAIL_CHARS_MAX])
    new = replace(view, state=SettlementState.ABORTED, events=(*view.events, event))
    return Change(new, event)


def position_deltas(lines: Iterable[SettlementLine]) -> dict[tuple[str, str], int]:
    """Change to each net position (debits positive) when the settlement is SETTLED."""
    return {(ln.participant_id, ln.currency): ln.net for ln in lines if ln.net != 0}


def settles_at_once(lines: Iterable[SettlementLine]) -> bool:
    """True when no line needs a payment (every net zero): settled as soon as created."""
    return all(ln.confirmed for ln in lines)
