"""Large neighbourhood search: re-solve a part of a release exactly, the last step of bypass.

The greedy steps before this one (offsetting, re-add, cycles) fall short on stressed
queues because nearly every queued transfer depends on others: dropping one moves the
shortfall on to its payee, and a better release differs from theirs in a few hundred
transfers across most participants at once. No small local move finds that, but a small
integer program does, when it is given the right few hundred transfers to decide.

So this step frees a *neighbourhood* of transfers, keeps every other transfer as the
release has it, and asks HiGHS (through `scipy.optimize.milp`) for a release of the
neighbourhood that is worth strictly more. The neighbourhood is where the release and the
linear relaxation disagree (a transfer the relaxation settles whole but the release does
not, or the reverse, or one it settles in part), plus the agreed transfers whose reduced
value under the relaxation's prices is nearest zero: those the relaxation is least sure
about. (Without them the sub-program can only reshuffle the disagreements, and the
release stays where the relaxation's arbitrary choice among equal vertices put it.)

Bounded in work, never in time, so the result depends on the snapshot only: at most
LNS_SOLVES_MAX sub-programs of at most LNS_VARS_MAX transfers, each stopped at its root
node (LNS_NODES_MAX) and at its first improving answer. HiGHS works in floating point, so
an answer is accepted only when it passes the floors again in exact integers. Transfers
marked `fixed` (the FIFO release) are never freed, so the step never releases less than
FIFO; it accepts only strict gains, so never less than the step before it.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from clearing.lsm_passes import Book, Relaxation

# Sub-programs solved per run; the search stops earlier once one brings no gain.
LNS_SOLVES_MAX = 3
# Transfers freed in one sub-program, disagreements and least certain agreed ones together.
LNS_VARS_MAX = 400
# Agreed transfers (least certain first) freed on top of the disagreements.
LNS_AGREED_VARS = 60
# Branch-and-bound nodes per sub-program: 1 stops at the root, after HiGHS's heuristics.
LNS_NODES_MAX = 1
# A sub-program stops at its first answer better than the release it started from.
LNS_IMPROVING_SOLS_MAX = 1
# A relaxation value strictly between these counts as settled in part.
_PART_MIN, _PART_MAX = 1e-6, 1 - 1e-6


def improve(
    book: Book,
    included: list[bool],
    projected: list[int],
    fixed: list[bool],
    relaxed: Relaxation,
) -> int:
    """Re-solve neighbourhoods of the release while that gains value; return the value gained.

    `relaxed` is the linear relaxation on top of the release `fixed`, whose transfers stay
    released. Updates `included` and `projected` in place: it may take transfers out of the
    release as well as put them in, so callers recompute what was added.
    """
    gained = 0
    for _ in range(LNS_SOLVES_MAX):
        free = neighbourhood(book, included, fixed, relaxed)
        if not free:
            break
        gain = _solve(book, included, projected, free)
        if gain <= 0:
            break
        gained += gain
    return gained


def neighbourhood(
    book: Book, included: list[bool], fixed: list[bool], relaxed: Relaxation
) -> list[int]:
    """The transfers to free: disagreements with the relaxation, then the least certain."""
    x, price = relaxed.x, relaxed.price
    payer, payee = book.payer, book.payee
    disagree: list[int] = []
    agreed: list[int] = []
    for i, done in enumerate(included):
        if fixed[i]:
            continue
        if _PART_MIN < x[i] < _PART_MAX or done != (x[i] > 0.5):
            disagree.append(i)
        else:
            agreed.append(i)

    def certainty(i: int) -> tuple[float, int]:
        # |reduced value| per unit of amount: 0 means the relaxation is indifferent.
        return (abs(1.0 - price[payer[i]] + price[payee[i]]), i)

    disagree.sort(key=certainty)
    agreed.sort(key=certainty)
    free = disagree[:LNS_VARS_MAX]
    free += agreed[: min(LNS_AGREED_VARS, LNS_VARS_MAX - len(free))]
    return sorted(free)


def _solve(book: Book, included: list[bool], projected: list[int], free: list[int]) -> int:
    """Best-effort better release of `free`, others as they are; apply it, return its gain."""
    payer, payee, amount, floor = book.payer, book.payee, book.amount, book.floor
    parts = sorted({payer[i] for i in free} | {payee[i] for i in free})
    row = {p: r for r, p in enumerate(parts)}
    k = len(free)
    # Each touched participant may lose at most its headroom, counted from the release
    # without the freed transfers: lower bound = (their current net effect) - headroom.
    base = [0] * len(parts)
    for i in free:
        if included[i]:
            base[row[payer[i]]] -= amount[i]
            base[row[payee[i]]] += amount[i]
    lower = [base[r] - (projected[p] - floor[p]) for r, p in enumerate(parts)]
    rows = [row[payer[i]] for i in free] + [row[payee[i]] for i in free]
    data = [-amount[i] for i in free] + [amount[i] for i in free]
    matrix = csr_array(
        (np.asarray(data, dtype=np.float64), (rows, list(range(k)) * 2)), (len(parts), k)
    )
    current = sum(amount[i] for i in free if included[i])
    options = {
        "disp": False,
        "node_limit": LNS_NODES_MAX,
        "mip_max_improving_sols": LNS_IMPROVING_SOLS_MAX,
        # Prune anything not strictly better (the objective is integral, minimised).
        "objective_bound": -current - 0.5,
    }
    with warnings.catch_warnings():
        # scipy warns that it passes the last two options to HiGHS as they are.
        warnings.simplefilter("ignore", RuntimeWarning)
        res = milp(
            -np.asarray([amount[i] for i in free], dtype=np.float64),
            integrality=np.ones(k),
            bounds=Bounds(0, 1),
            constraints=[LinearConstraint(matrix, np.asarray(lower, dtype=np.float64), np.inf)],
            options=options,
        )
    if res.x is None:
        return 0
    chosen = [bool(res.x[j] > 0.5) for j in range(k)]
    gain = sum(amount[i] * (int(c) - int(included[i])) for i, c in zip(free, chosen, strict=True))
    if gain <= 0:
        return 0
    after = list(projected)
    for i, c in zip(free, chosen, strict=True):
        change = (int(c) - int(included[i])) * amount[i]
        after[payer[i]] -= change
        after[payee[i]] += change
    if any(after[p] < floor[p] for p in parts):
        return 0  # the solver's tolerance let a floor slip: keep the release as it was
    for i, c in zip(free, chosen, strict=True):
        included[i] = c
    projected[:] = after
    return gain
