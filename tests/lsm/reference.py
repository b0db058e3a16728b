"""Slow, obvious reference models of the resolver, and the workload generator that feeds both.

The brute-force models enumerate every candidate release and keep the best feasible one:
no cleverness, so a disagreement points at the resolver.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from hypothesis import strategies as st

from clearing.lsm import PositionSnapshot, Priority, QueuedTransfer, queue_order_key
from clearing.money import Money

PARTICIPANTS = ("A", "B", "C", "D", "E")
CURRENCIES = ("HKD", "MOP")

Balances = Mapping[tuple[str, str], PositionSnapshot]


@st.composite
def queues(
    draw: st.DrawFn, *, size_max: int, currencies: Sequence[str] = CURRENCIES
) -> list[QueuedTransfer]:
    """Random queues among a few participants, so that transfers interact."""
    n = draw(st.integers(0, size_max))
    seqs = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    out = []
    for k in range(n):
        payer = draw(st.sampled_from(PARTICIPANTS))
        payee = draw(st.sampled_from([p for p in PARTICIPANTS if p != payer]))
        out.append(
            QueuedTransfer(
                id=f"t{k}",
                payer=payer,
                payee=payee,
                amount=Money(draw(st.integers(1, 100)), draw(st.sampled_from(currencies))),
                priority=draw(st.sampled_from(list(Priority))),
                seq=seqs[k],
            )
        )
    return out


@st.composite
def balances(draw: st.DrawFn, currencies: Sequence[str] = CURRENCIES) -> dict:
    """Positions and caps for most (participant, currency) pairs; missing ones mean zero."""
    out = {}
    for p in PARTICIPANTS:
        for c in currencies:
            if draw(st.integers(0, 5)) == 0:
                continue  # absent from the snapshot: nothing to spend
            out[(p, c)] = PositionSnapshot(draw(st.integers(-150, 150)), draw(st.integers(0, 150)))
    return out


def snapshot(balances: Balances, participant: str, currency: str) -> PositionSnapshot:
    return balances.get((participant, currency), PositionSnapshot(0, 0))


def feasible(txs: Sequence[QueuedTransfer], balances: Balances) -> bool:
    delta: dict[tuple[str, str], int] = defaultdict(int)
    for t in txs:
        delta[(t.payer, t.currency)] -= t.amount.minor
        delta[(t.payee, t.currency)] += t.amount.minor
    for (p, c), d in delta.items():
        s = snapshot(balances, p, c)
        if s.position_minor + d < s.floor_minor:
            return False
    return True


def sender_queues(txs: Sequence[QueuedTransfer]) -> dict[str, list[QueuedTransfer]]:
    """Each sender's queue in (priority, arrival) order."""
    out: dict[str, list[QueuedTransfer]] = defaultdict(list)
    for t in sorted(txs, key=queue_order_key):
        out[t.payer].append(t)
    return dict(out)


def fifo_feasible_prefixes(
    txs: Sequence[QueuedTransfer], balances: Balances
) -> list[dict[str, int]]:
    """Every prefix vector (how many of each sender's queue settle) that breaks no floor."""
    queues_by_sender = sender_queues(txs)
    senders = sorted(queues_by_sender)
    out = []
    for counts in itertools.product(*(range(len(queues_by_sender[s]) + 1) for s in senders)):
        chosen = [t for s, k in zip(senders, counts, strict=True) for t in queues_by_sender[s][:k]]
        if feasible(chosen, balances):
            out.append(dict(zip(senders, counts, strict=True)))
    return out


def value_of(txs: Sequence[QueuedTransfer]) -> int:
    return sum(t.amount.minor for t in txs)


def exact_max_value(txs: Sequence[QueuedTransfer], balances: Balances) -> int:
    """The largest value any subset of one currency's `txs` can release (2^n subsets)."""
    n = len(txs)
    if n == 0:
        return 0
    names = sorted({t.payer for t in txs} | {t.payee for t in txs})
    col = {p: j for j, p in enumerate(names)}
    (currency,) = {t.currency for t in txs}
    change = np.zeros((n, len(names)), dtype=np.int64)
    for i, t in enumerate(txs):
        change[i, col[t.payer]] -= t.amount.minor
        change[i, col[t.payee]] += t.amount.minor
    slack = np.array(
        [
            snapshot(balances, p, currency).position_minor
            - snapshot(balances, p, currency).floor_minor
            for p in names
        ],
        dtype=np.int64,
    )
    masks = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    ok = ((masks @ change) + slack >= 0).all(axis=1)
    values = masks @ np.array([t.amount.minor for t in txs], dtype=np.int64)
    return int(values[ok].max())
