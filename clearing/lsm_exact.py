"""The exact resolver pass: the largest-value release as a 0/1 integer program.

    maximise    sum_i amount_i * x_i
    subject to  position_p + sum_{i: payee_i = p} amount_i x_i
                           - sum_{i: payer_i = p} amount_i x_i  >=  floor_p   for each payer p
                x_i in {0, 1}

This is the bank clearing problem (Guntzer, Jungnickel and Leclerc, 1998), NP-hard in
general, so the solver (HiGHS through `scipy.optimize.milp`) runs under a time limit.
HiGHS works in floating point with tolerances, so its answer is only a proposal: the
caller re-checks it in exact integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from clearing.lsm_passes import Book

# HiGHS stops proving optimality once the gap is below this; 0 asks for the true optimum.
MIP_REL_GAP = 0.0


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"
    LIMIT = "limit"  # time or node limit reached
    INFEASIBLE = "infeasible"  # cannot happen (releasing nothing is feasible): a bug
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ExactResult:
    status: SolveStatus
    chosen: list[int] | None  # transfer indices of the best release found, if any
    bound_minor: int | None  # no release is worth more than this, when the solver says


_STATUS = {0: SolveStatus.OPTIMAL, 1: SolveStatus.LIMIT, 2: SolveStatus.INFEASIBLE}


def solve(book: Book, *, time_limit_s: float) -> ExactResult:
    """Largest-value release of `book` that HiGHS finds within `time_limit_s`.

    No cut-off at the fast passes' value: asking for a better release than a good one from
    scratch leaves HiGHS without any incumbent on large queues, while an optimal answer
    that is no better proves the fast passes optimal just as well.
    """
    n = len(book.txs)
    if n == 0:
        return ExactResult(SolveStatus.OPTIMAL, [], 0)
    amount = np.asarray(book.amount, dtype=np.float64)
    payers = sorted(set(book.payer))
    row_of = {p: r for r, p in enumerate(payers)}
    rows, cols, data = [], [], []
    for i in range(n):
        rows.append(row_of[book.payer[i]])
        cols.append(i)
        data.append(-book.amount[i])
        r = row_of.get(book.payee[i])
        if r is not None:
            rows.append(r)
            cols.append(i)
            data.append(book.amount[i])
    matrix = csr_array((np.asarray(data, dtype=np.float64), (rows, cols)), shape=(len(payers), n))
    lower = np.asarray([book.floor[p] - book.position[p] for p in payers], dtype=np.float64)
    constraints = [LinearConstraint(matrix, lower, np.inf)]
    res = milp(
        -amount,
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        constraints=constraints,
        options={"time_limit": time_limit_s, "mip_rel_gap": MIP_REL_GAP, "disp": False},
    )
    status = _STATUS.get(res.status, SolveStatus.ERROR)
    bound = getattr(res, "mip_dual_bound", None)
    bound_minor = None if bound is None or not math.isfinite(bound) else math.floor(-bound + 0.5)
    if res.x is None:
        return ExactResult(status, None, bound_minor)
    chosen = [i for i in range(n) if res.x[i] > 0.5]
    return ExactResult(status, chosen, bound_minor)
