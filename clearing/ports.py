"""The clearing port: what the gateway hands the clearing engine and what it gets back.

Plain frozen dataclasses, shared by the pure in-memory engine (`clearing.engine`) and the
PostgreSQL store (`gateway.clearing_store`), so that both can be driven by the same tests.
Amounts are `Money` (integer minor units); positions are plain ints in the currency's minor
units, signed with debits positive (a positive net position is what a participant owes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from clearing.model import TransferState
from clearing.money import Money
from clearing.reasons import Rejection

LEGS_MAX = 2  # one leg, or two for a conversion through the FX provider


@dataclass(frozen=True, slots=True)
class Leg:
    """Money moving from one participant to another in one currency."""

    payer: str
    payee: str
    amount: Money


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    """One transfer to reserve. `debtor_identity` is the raw ID number or account of the debtor
    (hashed with a keyed hash before use, never stored); `expires_at` ends the reservation."""

    transfer_id: str
    legs: tuple[Leg, ...]
    source_scheme: str
    destination_scheme: str
    expires_at: datetime
    debtor_identity: str | None = None
    quote_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReserveDecision:
    transfer_id: str
    ok: bool
    rejection: Rejection | None = None


FINAL_STATES = frozenset({TransferState.COMMITTED, TransferState.ABORTED, TransferState.EXPIRED})


@dataclass(frozen=True, slots=True)
class Outcome:
    """The state of a transfer after a commit, abort or expiry request.

    `changed` is True only for the one request that made the transition; every later or
    concurrent request gets the same final state with `changed` False. `state` is None for an
    id the engine never reserved.
    """

    transfer_id: str
    state: TransferState | None
    changed: bool
    window_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PositionView:
    participant_id: str
    currency: str
    net: int  # committed debits minus credits in windows not yet settled
    reserved: int
    net_debit_cap: int
    liquidity_cover: int

    @property
    def effective_cap(self) -> int:
        return min(self.net_debit_cap, self.liquidity_cover)

    @property
    def headroom(self) -> int:
        return self.effective_cap - self.net - self.reserved


@dataclass(frozen=True, slots=True)
class Quote:
    """A locked conversion rate: `target = source * rate`, rounded half up to the minor unit."""

    id: str
    source_currency: str
    target_currency: str
    rate: Decimal  # client rate, spread applied
    mid_rate: Decimal
    spread_bps: int
    fx_provider: str
    created_at: datetime
    expires_at: datetime


class SettlementState(StrEnum):
    PENDING_SETTLEMENT = "PENDING_SETTLEMENT"
    SETTLED = "SETTLED"
    ABORTED = "ABORTED"


class WindowState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"  # closed, its settlement pending
    SETTLED = "SETTLED"
    ABORTED = "ABORTED"  # its settlement was aborted: waits for the next settlement


@dataclass(frozen=True, slots=True)
class WindowTotal:
    """Running gross totals of one participant in one currency over one window."""

    participant_id: str
    currency: str
    debits: int
    credits: int


@dataclass(frozen=True, slots=True)
class NetLine:
    """One participant's multilateral net in one currency: credits minus debits."""

    participant_id: str
    currency: str
    debits: int
    credits: int

    @property
    def net(self) -> int:
        return self.credits - self.debits


@dataclass(frozen=True, slots=True)
class Instruction:
    """A settlement payment: `pay` to or `receive` from the currency's settlement system."""

    participant_id: str
    direction: str  # "pay" | "receive"
    amount: Money
    settlement_system: str


@dataclass(frozen=True, slots=True)
class CurrencyNetting:
    currency: str
    settlement_system: str
    lines: tuple[NetLine, ...]
    instructions: tuple[Instruction, ...]
    gross_minor: int  # value of all legs in the currency
    net_minor: int  # value paid in by net debtors (= paid out to net creditors)

    @property
    def efficiency(self) -> float | None:
        """Gross value cleared per unit of value settled; None when nothing needs settling."""
        return self.gross_minor / self.net_minor if self.net_minor else None


@dataclass(frozen=True, slots=True)
class SettlementLine:
    participant_id: str
    currency: str
    net: int  # credits minus debits
    reference: str | None = None
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        return self.net == 0 or self.reference is not None


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    state: str
    actor: str
    at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SettlementView:
    id: int
    state: SettlementState
    window_ids: tuple[int, ...]
    lines: tuple[SettlementLine, ...]
    events: tuple[SettlementEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class WindowClose:
    """The result of closing the open window: the next window is open before this returns."""

    window_id: int
    next_window_id: int
    closed_at: datetime
    settlement_id: int | None  # None when nothing is left to settle
    window_ids: tuple[int, ...] = ()  # windows in the settlement (this one plus aborted ones)
    netting: tuple[CurrencyNetting, ...] = field(default=())


class ClearingError(Exception):
    """An operator request that cannot be carried out (unknown settlement, wrong state, ...).
    Business rejections of transfers are never raised: they are `Rejection` data."""
