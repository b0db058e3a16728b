"""The two fast resolver passes, FIFO gridlock resolution and bypass, over plain int lists.

They work on a `Book`: one currency's queue in canonical (priority, arrival) order, with
participants and amounts as indices and ints, because the resolver runs every few hundred
milliseconds over queues of tens of thousands of transfers and objects cost too much there.
See `clearing.lsm` for what the passes mean; this module only says how.
"""

from __future__ import annotations

import bisect
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
    """Release more of what FIFO left queued, giving up queue order; the better of two tries.

    Plain: `readd` alone. Offsetting: `offset`, then `readd`. Both keep every FIFO release
    and only add, so neither releases less than FIFO; the one releasing more value wins
    (plain on a tie). Updates `included` and `projected` in place, returns indices added.
    """
    plain_inc, plain_proj = list(included), list(projected)
    plain = readd(book, plain_inc, plain_proj)
    off_inc, off_proj = list(included), list(projected)
    off = offset(book, off_inc, off_proj)
    off += readd(book, off_inc, off_proj)
    amount = book.amount
    if sum(amount[i] for i in off) > sum(amount[i] for i in plain):
        included[:], projected[:] = off_inc, off_proj
        return off
    included[:], projected[:] = plain_inc, plain_proj
    return plain


def readd(book: Book, included: list[bool], projected: list[int]) -> list[int]:
    """Re-add left-out transfers in (priority, value descending) order where headroom allows.

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


def offset(book: Book, included: list[bool], projected: list[int]) -> list[int]:
    """Gridlock resolution among left-out transfers, ignoring queue order.

    Tentatively settle every left-out transfer on top of the current release; while a
    participant is below its floor, drop one of its tentative transfers, chosen to do the
    least harm: first those whose payee can absorb the loss, normal before urgent, and
    among them the smallest that covers the shortfall, else the largest. Dropping all of a
    participant's tentative transfers brings it back to at least where it started, which
    held its floor, so the loop ends with every floor held.
    """
    payer, payee, amount, floor = book.payer, book.payee, book.amount, book.floor
    todo = [i for i in range(len(included)) if not included[i]]
    outgoing: list[list[int]] = [[] for _ in book.names]
    live = list(included)
    for i in todo:
        projected[payer[i]] -= amount[i]
        projected[payee[i]] += amount[i]
        outgoing[payer[i]].append(i)
        live[i] = True
    work = [p for p in range(len(projected)) if projected[p] < floor[p]]
    while work:
        p = work.pop()
        if projected[p] >= floor[p]:
            continue
        outgoing[p] = [i for i in outgoing[p] if live[i]]
        for i in _drops(book, outgoing[p], projected, floor[p] - projected[p]):
            live[i] = False
            projected[p] += amount[i]
            q = payee[i]
            projected[q] -= amount[i]
            if projected[q] < floor[q]:
                work.append(q)
        assert projected[p] >= floor[p], "dropping tentative transfers must restore the floor"
    added = [i for i in todo if live[i]]
    for i in added:
        included[i] = True
    return added


def _drops(book: Book, candidates: list[int], projected: list[int], need: int) -> list[int]:
    """Which of one participant's tentative transfers to drop to cover `need` (see `offset`)."""
    payee, amount, floor = book.payee, book.amount, book.floor
    # Groups in order of preference: (payee absorbs, normal), (absorbs, urgent), (not, ...).
    groups: list[list[tuple[int, int]]] = [[], [], [], []]
    slack: dict[int, int] = {}
    for i in candidates:
        q = payee[i]
        s = slack.setdefault(q, projected[q] - floor[q])
        groups[(0 if s >= amount[i] else 2) + (1 - book.rank[i])].append((amount[i], i))
    chosen: list[int] = []
    for g, group in enumerate(groups):
        group.sort()
        while need > 0 and group:
            k = bisect.bisect_left(group, (need, -1))
            a, i = group.pop(min(k, len(group) - 1))
            q = payee[i]
            if g < 2 and slack[q] < a:  # an earlier drop used up this payee's slack
                bisect.insort(groups[g + 2], (a, i))
                continue
            slack[q] -= a
            need -= a
            chosen.append(i)
    return chosen
