"""Double-entry ledger posting.

Every journal (a committed transfer, or a settlement) is a set of entries on participant
accounts, one account per (participant, currency), amounts signed with debits positive. Each
journal sums to zero per currency, so the sum of all balances in a currency is zero. That is
asserted here when entries are built, and the database refuses an unbalanced statement as well
(migrations/0002_clearing.sql), so neither a bug here nor one in SQL can break the equation.

An account's balance equals the participant's net position in that currency: committed legs
add to it and settlement takes the settled amounts back out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from clearing.ports import Leg, SettlementLine

# (payer, payee, currency, minor units): a leg as plain data, for the arithmetic paths
LegTuple = tuple[str, str, str, int]


class Entry(NamedTuple):
    journal_id: str
    leg_no: int
    participant_id: str
    currency: str
    amount: int  # debit positive, credit negative


class UnbalancedJournal(AssertionError):
    """A journal whose entries do not sum to zero in some currency: a programming error."""


def leg_tuples(legs: Iterable[Leg]) -> tuple[LegTuple, ...]:
    return tuple((leg.payer, leg.payee, leg.amount.currency, leg.amount.minor) for leg in legs)


def leg_entries(transfer_id: str, legs: Sequence[LegTuple]) -> list[Entry]:
    """Debit the payer and credit the payee of every leg."""
    out: list[Entry] = []
    for i, (payer, payee, ccy, amt) in enumerate(legs, start=1):
        assert amt > 0, f"{transfer_id} leg {i}: amount must be positive"
        out.append(Entry(transfer_id, i, payer, ccy, amt))
        out.append(Entry(transfer_id, i, payee, ccy, -amt))
    return out


def settlement_journal_id(settlement_id: int) -> str:
    return f"settlement:{settlement_id}"


def settlement_entries(settlement_id: int, lines: Iterable[SettlementLine]) -> list[Entry]:
    """Take each participant's settled net out of its position: a net creditor (net > 0) was
    paid through the settlement system, so its account is debited by that amount."""
    jid = settlement_journal_id(settlement_id)
    out = [Entry(jid, 0, ln.participant_id, ln.currency, ln.net) for ln in lines if ln.net != 0]
    assert_balanced(out)
    return out


def sums(entries: Iterable[Entry]) -> dict[tuple[str, str], int]:
    """Sum per (journal, currency)."""
    total: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        total[(e.journal_id, e.currency)] += e.amount
    return total


def assert_balanced(entries: Iterable[Entry]) -> None:
    bad = {k: v for k, v in sums(entries).items() if v != 0}
    if bad:
        raise UnbalancedJournal(f"unbalanced journals (journal, currency) -> sum: {bad}")


def balances(entries: Iterable[Entry]) -> dict[tuple[str, str], int]:
    """Balance per (participant, currency)."""
    total: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        total[(e.participant_id, e.currency)] += e.amount
    return dict(total)
