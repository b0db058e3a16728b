"""What ending a batch of reservations does to positions, totals, counters and the ledger.

One pure function turns the transitions decided for a batch (commit, abort, expire) into
aggregated deltas, so the in-memory engine and the database store apply exactly the same
arithmetic. Aggregating per key also means one row update per (participant, currency) per
batch, however many transfers of a hot payer the batch holds.

    COMMITTED: payer reserved -= amount, payer net += amount, payee net -= amount,
               window debits/credits += amount and their counts += 1, ledger entries posted
    ABORTED / EXPIRED: payer reserved -= amount, corridor usage given back
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from clearing.ledger import Entry, LegTuple, assert_balanced, leg_entries
from clearing.model import TransferState

PosKey = tuple[str, str]
UsageKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Ending:
    """One transfer leaving RESERVED."""

    transfer_id: str
    legs: Sequence[LegTuple]
    state: TransferState
    usage_keys: tuple[UsageKey, ...] = ()
    counted: int = 0


@dataclass(slots=True)
class Effects:
    reserved: dict[PosKey, int] = field(default_factory=lambda: defaultdict(int))
    net: dict[PosKey, int] = field(default_factory=lambda: defaultdict(int))
    debits: dict[PosKey, int] = field(default_factory=lambda: defaultdict(int))
    credits: dict[PosKey, int] = field(default_factory=lambda: defaultdict(int))
    debit_count: dict[PosKey, int] = field(default_factory=lambda: defaultdict(int))
    credit_count: dict[PosKey, int] = field(default_factory=lambda: defaultdict(int))
    usage: dict[UsageKey, int] = field(default_factory=lambda: defaultdict(int))
    entries: list[Entry] = field(default_factory=list)

    def position_keys(self) -> list[PosKey]:
        """Every position row touched, in the fixed lock order."""
        return sorted(set(self.reserved) | set(self.net))

    def totals_keys(self) -> list[PosKey]:
        return sorted(set(self.debits) | set(self.credits))


def effects(endings: Iterable[Ending]) -> Effects:
    fx = Effects()
    for e in endings:
        for payer_id, payee_id, ccy, amt in e.legs:
            payer = (payer_id, ccy)
            fx.reserved[payer] -= amt
            if e.state is TransferState.COMMITTED:
                payee = (payee_id, ccy)
                fx.net[payer] += amt
                fx.net[payee] -= amt
                fx.debits[payer] += amt
                fx.credits[payee] += amt
                fx.debit_count[payer] += 1
                fx.credit_count[payee] += 1
        if e.state is TransferState.COMMITTED:
            fx.entries.extend(leg_entries(e.transfer_id, e.legs))
        else:
            for k in e.usage_keys:
                fx.usage[k] -= e.counted
    assert_balanced(fx.entries)
    assert _per_currency_zero(fx.net), "net position deltas must sum to zero per currency"
    return fx


def _per_currency_zero(net: dict[PosKey, int]) -> bool:
    total: dict[str, int] = defaultdict(int)
    for (_, ccy), v in net.items():
        total[ccy] += v
    return all(v == 0 for v in total.values())
