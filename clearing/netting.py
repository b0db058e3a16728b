"""Multilateral netting per currency, settlement instructions, and the bilateral view.

Input is the running totals kept per (window, participant, currency) as transfers commit, so
netting a window costs O(participants x currencies), whatever the number of transfers. Each
participant's net is credits minus debits; in each currency the nets sum to zero (asserted),
net debtors pay the settlement system and net creditors receive from it. Netting efficiency is
gross value cleared per unit of value actually settled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clearing.money import Money
from clearing.ports import CurrencyNetting, Instruction, NetLine, WindowTotal

DEFAULT_SETTLEMENT_SYSTEMS: dict[str, str] = {
    "HKD": "HK CHATS",
    "CNY": "CNAPS HVPS",
    "MOP": "Macau RTGS",
}


class NettingError(AssertionError):
    """Totals that cannot come from a balanced ledger (nets not summing to zero)."""


def net_lines(totals: Iterable[WindowTotal]) -> list[NetLine]:
    """Sum totals over windows into one line per (participant, currency), sorted."""
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for t in totals:
        a = acc[(t.participant_id, t.currency)]
        a[0] += t.debits
        a[1] += t.credits
    return [NetLine(p, c, d, cr) for (p, c), (d, cr) in sorted(acc.items())]


def net_by_currency(
    totals: Iterable[WindowTotal], systems: Mapping[str, str] = DEFAULT_SETTLEMENT_SYSTEMS
) -> list[CurrencyNetting]:
    by_ccy: dict[str, list[NetLine]] = defaultdict(list)
    for line in net_lines(totals):
        by_ccy[line.currency].append(line)
    out = []
    for ccy in sorted(by_ccy):
        lines = by_ccy[ccy]
        gross = sum(ln.debits for ln in lines)
        if sum(ln.net for ln in lines) != 0 or gross != sum(ln.credits for ln in lines):
            raise NettingError(f"{ccy}: nets do not sum to zero")
        system = systems.get(ccy, DEFAULT_SETTLEMENT_SYSTEMS.get(ccy, f"{ccy} RTGS"))
        instructions = tuple(
            Instruction(
                ln.participant_id,
                "pay" if ln.net < 0 else "receive",
                Money(abs(ln.net), ccy),
                system,
            )
            for ln in lines
            if ln.net != 0
        )
        net = sum(-ln.net for ln in lines if ln.net < 0)
        out.append(CurrencyNetting(ccy, system, tuple(lines), instructions, gross, net))
    return out


@dataclass(frozen=True, slots=True)
class BilateralNet:
    """What `a` owes `b` net in `currency` (negative: `b` owes `a`); `a` < `b`."""

    currency: str
    a: str
    b: str
    a_to_b: int
    b_to_a: int

    @property
    def net(self) -> int:
        return self.a_to_b - self.b_to_a


def bilateral(flows: Iterable[tuple[str, str, str, int]]) -> list[BilateralNet]:
    """Pairwise nets from (payer, payee, currency, amount) flows, for reports."""
    acc: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for payer, payee, ccy, amount in flows:
        if payer < payee:
            acc[(ccy, payer, payee)][0] += amount
        else:
            acc[(ccy, payee, payer)][1] += amount
    return [BilateralNet(c, a, b, ab, ba) for (c, a, b), (ab, ba) in sorted(acc.items())]
