"""The two fast resolver passes, FIFO gridlock resolution and bypass, over plain int lists.

They work on a `Book`: one currency's queue in canonical (priority, arrival) order, with
participants and amounts as indices and ints, because the resolver runs every few hundred
milliseconds over queues of tens of thousands of transfers and objects cost too much there.
See `clearing.lsm` for what the passes mean; this module only says how.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clearing.lsm import QueuedTransfer

# Bypass stops after this many sweeps even if the last one still released something.
BYPASS_ROUNDS_MAX = 16


@dataclass(frozen=True, slots=True)
class Book:
    """One currency's queue. Transfer i goes from participant payer[i] to payee[i]."""

    txs: list[QueuedTransfer]  # the QueuedTransfer objects, in (priority, arrival) order
    names: list[str]  # participant index -> participant id
    payer: list[int]
    payee: list[int]
    amount: list[int]  # minor units, > 0
    rank: list[int]  # 0 urgent, 1 normal
    position: list[int]  # per participant: current net position
    floor: list[int]  # per participant: lowest acceptable projected position

    def project(self, chosen: list[int]) -> list[int]:
        """Positions after settling the transfers `chosen`."""
        projected = list(self.position)
        for i in chosen:
            projected[self.payer[i]] -= self.amount[i]
            projected[self.payee[i]] += self.amount[i]
        return projected


def fifo(book: Book) -> tuple[list[bool], list[int]]:
    """Largest release that keeps each sender's queue order; returns (included, projected).

    Settle everything, then while a participant is below its floor drop its last included
    transfer. Each drop raises the payer and lowers only the payee, who then joins the work
    list if it falls below its floor. Every transfer is dropped at most once: O(n).
    """
    n = len(book.txs)
    payer, payee, amount, floor = book.payer, book.payee, book.amount, book.floor
    projected = book.project(list(range(n)))
    queues: list[list[int]] = [[] for _ in book.names]
    for i in range(n):
        queues[payer[i]].append(i)
    kept = [len(q) for q in queues]
    work = [p for p in range(len(projected)) if projected[p] < floor[p]]
    while work:
        p = work.pop()
        k = kept[p]
        while projected[p] < floor[p]:
            # With nothing left to send, p sits at position + credits >= position >= floor.
            assert k > 0, "a participant with no outgoing transfer is below its floor"
            k -= 1
            i = queues[p][k]
            projected[p] += amount[i]
            r = payee[i]
            projected[r] -= amount[i]
            if projected[r] < floor[r]:
                work.append(r)
        kept[p] = k
    included = [False] * n
    for p, q in enumerate(queues):
        for i in q[: kept[p]]:
            included[i] = True
    return included, projected


def bypass(book: Book, included: list[bool], projected: list[int]) -> list[int]:
    """Re-add dropped transfers in (priority, value descending) order where headroom allows.

    Updates `included` and `projected` in place and returns the indices added, in order.
    A transfer added only lowers its payer, who was checked, and raises its payee, so every
    floor that held still holds. Sweeps repeat while the last one released something,
    because a credit may give a payer the headroom for a transfer skipped earlier.
    """
    payer, payee, amount, floor = book.payer, book.payee, book.amount, book.floor
    # Index order is (priority, arrival), so it breaks ties between equal amounts.
    todo = sorted(
        (i for i in range(len(included)) if not included[i]),
        key=lambda i: (book.rank[i], -amount[i], i),
    )
    added: list[int] = []
    for _ in range(BYPASS_ROUNDS_MAX):
        skipped: list[int] = []
        for i in todo:
            p = payer[i]
            if projected[p] - amount[i] >= floor[p]:
                projected[p] -= amount[i]
                projected[payee[i]] += amount[i]
                included[i] = True
                added.append(i)
            else:
                skipped.append(i)
        if len(skipped) == len(todo):
            break
        todo = skipped
    return added
