"""The two fast resolver passes, FIFO gridlock resolution and bypass, over plain int lists.

They work on a `Book`: one currency's queue in canonical (priority, arrival) order, with
participants and amounts as indices and ints, because the resolver runs every few hundred
milliseconds over queues of tens of thousands of transfers and objects cost too much there.
See `clearing.lsm` for what the passes mean; this module only says how.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array

if TYPE_CHECKING:
    from clearing.lsm import QueuedTransfer

# Re-adding stops retrying skipped transfers after this many retries of a payer's list.
RETRY_MAX = 100_000
# Offsetting looks at most this many transfers either side of a shortfall per choice.
PICK_SCAN_MAX = 128
# Bypass runs at most this many offsetting tries, and fewer on large queues: tries times
# transfers left out by FIFO stays below OFFSET_WORK_MAX (two tries at least).
OFFSET_TRIES_MAX = 32
OFFSET_WORK_MAX = 24_000
SHUFFLE_SEED = 20_250_101
# Offsetting tries guided by the linear relaxation: at most RELAXED_TRIES_MAX, tries times
# transfers left out at most RELAXED_WORK_MAX; the relaxation is solved only when two fit.
RELAXED_TRIES_MAX = 8
RELAXED_WORK_MAX = 8_000
# A transfer the relaxation settles at least this fraction of counts as settled whole.
RELAXED_WHOLE_MIN = 0.999


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


def bypass(
    book: Book, included: list[bool], projected: list[int], relaxed: Relaxation | None = None
) -> list[int]:
    """Release more of what FIFO left queued, giving up queue order; the best of several tries.

    Plain: `readd` alone. Offsetting: `offset`, then `readd`, with the participants below
    their floor visited last-found first, first-found first, then in shuffled orders (a
    fixed seed, so the result depends on the snapshot only) while OFFSET_WORK_MAX allows:
    the dropping is greedy, and on large gridlocks which order ends best varies from
    snapshot to snapshot, and widely. With `relaxed` (the linear relaxation on top of
    `included`, see `relax`), also guided tries that drop last what it settles whole. All
    tries keep every FIFO release and only add, so none releases less than FIFO; the one
    releasing most value wins (the earlier try on a tie). Updates `included` and
    `projected` in place, returns indices added.
    """
    amount = book.amount
    left = max(1, included.count(False))
    shuffles = min(OFFSET_TRIES_MAX, OFFSET_WORK_MAX // left) - 2
    rnd = random.Random(SHUFFLE_SEED)
    tries: list[tuple[str | None, list[bool] | None]] = [(None, None), ("lifo", None)]
    tries += [("fifo", None)] + [("shuffle", None)] * max(0, shuffles)
    guided = min(RELAXED_TRIES_MAX, RELAXED_WORK_MAX // left)
    if relaxed is not None and guided >= 2:
        keep = relaxed.keep()
        tries += [("lifo", keep)] + [("shuffle", keep)] * (guided - 1)
    best: tuple[int, list[int], list[bool], list[int]] | None = None
    for how, marks in tries:
        inc, proj = list(included), list(projected)
        added = [] if how is None else offset(book, inc, proj, order=how, rnd=rnd, keep=marks)
        added += readd(book, inc, proj)
        value = sum(amount[i] for i in added)
        if best is None or value > best[0]:
            best = (value, added, inc, proj)
    assert best is not None
    _, added, inc, proj = best
    included[:], projected[:] = inc, proj
    return added


def readd(book: Book, included: list[bool], projected: list[int]) -> list[int]:
    """Re-add left-out transfers in (priority, value descending) order where headroom allows.

    A transfer added only lowers its payer, who was checked, and raises its payee, so every
    floor that held still holds. A credit may give a payer the headroom for a transfer it
    had to skip: such payers try their skipped transfers again, in the same order, each
    time they are credited (at most RETRY_MAX retries in all).
    """
    payer, payee, amount, floor = book.payer, book.payee, book.amount, book.floor
    # Index order is (priority, arrival), so it breaks ties between equal amounts.
    todo = sorted(
        (i for i in range(len(included)) if not included[i]),
        key=lambda i: (book.rank[i], -amount[i], i),
    )
    skipped: list[list[int]] = [[] for _ in book.names]
    credited: list[int] = []
    added: list[int] = []

    def take(i: int) -> bool:
        p = payer[i]
        if projected[p] - amount[i] < floor[p]:
            return False
        projected[p] -= amount[i]
        projected[payee[i]] += amount[i]
        included[i] = True
        added.append(i)
        credited.append(payee[i])
        return True

    for i in todo:
        if not take(i):
            skipped[payer[i]].append(i)
    # The smallest skipped amount per payer: a payer whose headroom is below it has
    # nothing to retry, which saves rescanning a large participant's list on every credit.
    smallest = [min((amount[i] for i in s), default=0) for s in skipped]
    retries = 0
    while credited and retries < RETRY_MAX:
        p = credited.pop()
        if skipped[p] and projected[p] - smallest[p] >= floor[p]:
            retries += 1
            skipped[p] = [i for i in skipped[p] if not take(i)]
            smallest[p] = min((amount[i] for i in skipped[p]), default=0)
    return added


def offset(
    book: Book,
    included: list[bool],
    projected: list[int],
    *,
    order: str = "lifo",
    rnd: random.Random | None = None,
    keep: list[bool] | None = None,
) -> list[int]:
    """Gridlock resolution among left-out transfers, ignoring queue order.

    Tentatively settle every left-out transfer on top of the current release; while a
    participant is below its floor, drop one of its tentative transfers, chosen to do the
    least harm (see `_pick`). Dropping all of a participant's tentative transfers brings it
    back to at least where it started, which held its floor, so the loop ends with every
    floor held. Every transfer is dropped at most once. `order` chooses which participant
    below its floor is seen to next: the one found last ("lifo"), the one found first
    ("fifo"), or one drawn from `rnd` ("shuffle"). With `keep`, a participant drops the
    transfers not marked there before any marked one.
    """
    payer, payee, amount, floor = book.payer, book.payee, book.amount, book.floor
    todo = [i for i in range(len(included)) if not included[i]]
    # tiers[0]: dropped first (not marked in `keep`); tiers[1]: the marked ones.
    tiers: list[list[list[int]]] = [[[] for _ in book.names] for _ in range(2)]
    live = list(included)
    for i in todo:
        projected[payer[i]] -= amount[i]
        projected[payee[i]] += amount[i]
        tiers[1 if keep is not None and keep[i] else 0][payer[i]].append(i)
        live[i] = True
    for outgoing in tiers:
        for out in outgoing:
            out.sort(key=lambda i: (amount[i], i))
    sizes = [[[amount[i] for i in out] for out in outgoing] for outgoing in tiers]
    unmarked_live = [len(out) for out in tiers[0]]
    work = deque(p for p in range(len(projected)) if projected[p] < floor[p])
    take = work.popleft if order == "fifo" else work.pop
    while work:
        if order == "shuffle":
            assert rnd is not None, "a shuffled order needs its random source"
            work.rotate(-rnd.randrange(len(work)))
        p = take()
        while projected[p] < floor[p]:
            t = 0 if unmarked_live[p] else 1
            need = floor[p] - projected[p]
            i = _pick(book, tiers[t][p], sizes[t][p], live, projected, need)
            unmarked_live[p] -= t == 0
            live[i] = False
            projected[p] += amount[i]
            q = payee[i]
            projected[q] -= amount[i]
            if projected[q] < floor[q]:
                work.append(q)
    added = [i for i in todo if live[i]]
    for i in added:
        included[i] = True
    return added


def relaxation_fits(included: list[bool]) -> bool:
    """Whether the relaxation is worth solving: at least two guided tries fit their bound."""
    left = max(1, included.count(False))
    return min(RELAXED_TRIES_MAX, RELAXED_WORK_MAX // left) >= 2


@dataclass(frozen=True, slots=True)
class Relaxation:
    """The linear relaxation on top of a release: each left-out transfer may settle in part.

    `x[i]` is the share of transfer i it settles (1.0 for one already released), `price[p]`
    the value of one more minor unit of headroom for participant p (its dual price).
    """

    x: list[float]
    price: list[float]

    def keep(self) -> list[bool]:
        """The transfers it settles whole, the ones offsetting should keep longest."""
        return [v > RELAXED_WHOLE_MIN for v in self.x]


def relax(book: Book, included: list[bool]) -> Relaxation | None:
    """Solve the linear relaxation on top of `included`; None if nothing is left or unsolved.

    On stressed queues it is near integral and worth only a few per cent more than the
    best whole release, so the transfers it settles whole are the ones offsetting should
    keep longest, and where it disagrees with a release is where to look for a better one.
    Only a hint: floors are enforced in integers by the steps that use it, never by the
    solver.
    """
    left = [i for i, done in enumerate(included) if not done]
    if not left:
        return None
    k = len(left)
    rows = [book.payer[i] for i in left] + [book.payee[i] for i in left]
    data = [book.amount[i] for i in left] + [-book.amount[i] for i in left]
    matrix = csr_array(
        (np.asarray(data, dtype=np.float64), (rows, list(range(k)) * 2)), (len(book.names), k)
    )
    headroom = np.asarray(projected_headroom(book, included), dtype=np.float64)
    cost = -np.asarray([book.amount[i] for i in left], dtype=np.float64)
    res = linprog(cost, A_ub=matrix, b_ub=headroom, bounds=(0, 1), method="highs")
    if res.status != 0 or res.x is None:
        return None
    x = [1.0] * len(included)
    for j, i in enumerate(left):
        x[i] = float(res.x[j])
    price = [float(-m) for m in res.ineqlin.marginals]
    return Relaxation(x, price)


def projected_headroom(book: Book, included: list[bool]) -> list[int]:
    """Per participant: how far the release `included` leaves it above its floor."""
    projected = book.project([i for i, done in enumerate(included) if done])
    return [projected[p] - book.floor[p] for p in range(len(projected))]


def _pick(
    book: Book,
    out: list[int],
    sizes: list[int],
    live: list[bool],
    projected: list[int],
    need: int,
) -> int:
    """The tentative transfer of one participant to drop next, to cover `need`.

    Preference: one whose payee can absorb the loss without falling below its floor before
    one whose payee cannot, normal before urgent, and within each of these four groups the
    smallest that covers `need`, else the largest. Each
    preference looks at most PICK_SCAN_MAX transfers either side of `need` (`out` is sorted
    by amount, `sizes` holds the amounts), so a large participant costs bounded work;
    failing all, the largest live transfer goes.
    """
    payee, rank, amount, floor = book.payee, book.rank, book.amount, book.floor
    k = bisect.bisect_left(sizes, need)
    up = range(k, min(len(out), k + PICK_SCAN_MAX))
    down = range(k - 1, max(-1, k - 1 - PICK_SCAN_MAX), -1)
    for absorbing in (True, False):
        for want_rank in (1, 0):
            for j in (*up, *down):
                i = out[j]
                if live[i] and rank[i] == want_rank:
                    q = payee[i]
                    if not absorbing or projected[q] - amount[i] >= floor[q]:
                        return i
    while not live[out[-1]]:  # dropped transfers leave the tail for good
        out.pop()
        sizes.pop()
    return out[-1]
