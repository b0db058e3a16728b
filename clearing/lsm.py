"""Liquidity-saving mode: choose which queued transfers can settle together.

Theory of operation
-------------------
With tight caps, many transfers that do not fit one by one offset each other: A pays B,
B pays C, C pays A, and each leg alone breaks a cap while the three together move nobody.
In liquidity-saving mode such transfers wait in a queue, and `resolve` picks sets that can
settle at once. It is a pure function over a snapshot (the queue and the positions, caps
and floors of everyone involved) and is run per currency, because positions are.

Each participant has a *floor*: the lower of its current net position and minus its
effective cap. A release is acceptable when every participant's projected position
(current position plus credits minus debits of the released transfers) stays at or above
its floor. A participant already beyond its cap may therefore stay where it is, or
improve, but never get worse.

Up to three passes run, each adding to the previous one's result:

1. ``Pass.FIFO``, gridlock resolution in the style of Bech and Soramaki (2001): settle
   the whole queue tentatively; while a participant is below its floor, drop its last
   queued transfer in (priority, arrival) order. Feasible "prefix vectors" (how many of
   each sender's queue go) are closed under componentwise maximum, so there is one
   largest, and the dropping finds it whatever order violators are visited in.
2. ``Pass.BYPASS`` gives up queue order for more value, keeping every FIFO release. Plain
   bypass re-adds dropped transfers in (priority, value descending) order wherever the
   payer's headroom allows. That frees nothing when the dropped transfers are gridlocked
   among themselves, so bypass also tries an offsetting step first: gridlock resolution
   over the dropped transfers, where a participant below its floor drops the tentative
   transfer that does least harm (one whose payee can absorb the loss) instead of its
   last one; then the re-add, in several orders of visiting the participants below their
   floor, within a work bound; on queues small enough, also with the transfers the
   linear relaxation settles whole dropped last. The try releasing most value wins.
   Then whole cycles of left-out transfers that fit together are added
   (`clearing.lsm_groups`). Last, on those small queues, a neighbourhood search re-solves
   exactly, as a small integer program, the part of the release where it and the linear
   relaxation disagree, and keeps a strictly better answer (`clearing.lsm_lns`).
3. ``Pass.EXACT`` (at window close): an integer program over the whole queue
   (`clearing.lsm_exact`), accepted only when it releases strictly more value than the
   first two passes and survives `check_release`, the exact integer re-check.

`check_release` is also what the store runs, under lock, against current positions
before applying a release: a stale result is discarded, never applied in part.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from clearing import lsm_exact, lsm_groups, lsm_lns, lsm_passes
from clearing.money import Money

# A resolver run over more transfers than this is a caller bug: page the queue instead.
QUEUE_LEN_MAX = 200_000
# The integer program is skipped for a currency with more queued transfers than this.
EXACT_SIZE_MAX = 20_000
EXACT_TIME_LIMIT_S_DEFAULT = 5.0


class Priority(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


PRIORITY_RANK: dict[str, int] = {Priority.URGENT: 0, Priority.NORMAL: 1}


class Pass(StrEnum):
    """A resolver pass. As `mode`, the last pass to run; in a result, the pass that released."""

    FIFO = "fifo"
    BYPASS = "bypass"
    EXACT = "exact"


class ExactStatus(StrEnum):
    ACCEPTED = "accepted"  # the integer program released more value and passed the re-check
    NOT_BETTER = "not_better"  # proven optimal and no better than the first two passes
    TIME_LIMIT = "time_limit"  # stopped at the time limit without a better release
    RECHECK_FAILED = "recheck_failed"  # the solver's answer broke a floor in exact integers
    TOO_LARGE = "too_large"  # more than EXACT_SIZE_MAX transfers: not attempted
    SOLVER_ERROR = "solver_error"


@dataclass(frozen=True, slots=True)
class QueuedTransfer:
    """A transfer waiting for liquidity. `seq` is the arrival order (unique per payer)."""

    id: str
    payer: str
    payee: str
    amount: Money
    priority: Priority = Priority.NORMAL
    seq: int = 0

    def __post_init__(self) -> None:
        if self.amount.minor <= 0:
            raise ValueError(f"queued transfer {self.id}: amount must be positive")
        if self.payer == self.payee:
            raise ValueError(f"queued transfer {self.id}: payer and payee are the same")
        object.__setattr__(self, "priority", Priority(self.priority))

    @property
    def currency(self) -> str:
        return self.amount.currency


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """One participant's standing in one currency, in minor units.

    `position_minor` is credits minus debits (negative: net debtor). `cap_minor` is the
    effective cap, the lower of the net debit cap and the liquidity cover.
    """

    position_minor: int
    cap_minor: int

    @classmethod
    def from_limits(cls, position_minor: int, ndc_minor: int, cover_minor: int) -> PositionSnapshot:
        return cls(position_minor, min(ndc_minor, cover_minor))

    @property
    def floor_minor(self) -> int:
        """The lowest position a release may leave: never worse than now, nor beyond the cap."""
        return min(self.position_minor, -self.cap_minor)


# A participant missing from the snapshot has nothing to spend.
NO_POSITION = PositionSnapshot(0, 0)

Balances = Mapping[tuple[str, str], PositionSnapshot]


@dataclass(frozen=True, slots=True)
class ExactOutcome:
    status: ExactStatus
    value_minor: int = 0  # value the integer program's answer would release (0 if none)
    bound_minor: int | None = None  # solver's upper bound on any release's value, when known
    proved_optimal: bool = False  # the solver proved no release is worth more than its answer

    @property
    def mip_gap(self) -> float | None:
        """(bound - answer) / bound: how far from proven optimal the solver stopped."""
        if self.bound_minor is None or self.bound_minor <= 0:
            return None
        return max(0.0, (self.bound_minor - self.value_minor) / self.bound_minor)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to release. `released` is in (priority, arrival) order, the order to deliver in.

    `released_by` names the earliest pass whose result holds the transfer: after an
    accepted exact pass, "fifo" and "bypass" mark transfers those passes had released too.
    """

    released: tuple[str, ...]
    released_by: Mapping[str, Pass]
    # Projected position of every (participant, currency) in the queue after the release.
    positions_minor: Mapping[tuple[str, str], int]
    value_released_minor: Mapping[str, int]
    # Per currency: the sum of net debit increases, the liquidity the release consumes.
    liquidity_used_minor: Mapping[str, int]
    still_queued: tuple[str, ...] = ()
    exact: Mapping[str, ExactOutcome] = field(default_factory=dict)


class ProblemKind(StrEnum):
    DUPLICATE = "duplicate"  # the same transfer id twice in one release
    FLOOR = "floor"  # a participant would end below its floor
    UNBALANCED = "unbalanced"  # net changes do not sum to zero (cannot happen: a bug)


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    currency: str
    participant: str
    message: str


def resolve(
    queue: Sequence[QueuedTransfer],
    balances: Balances,
    *,
    mode: Pass = Pass.BYPASS,
    exact_time_limit_s: float = EXACT_TIME_LIMIT_S_DEFAULT,
    exact_size_max: int = EXACT_SIZE_MAX,
) -> Resolution:
    """Choose the transfers of `queue` that can settle together against `balances`.

    Pure: reads the snapshot, returns data. The result does not depend on the order of
    `queue`. Raises ValueError only for caller bugs (duplicate ids, oversized queue).
    """
    mode = Pass(mode)
    _check_queue(queue)
    by_currency: dict[str, list[QueuedTransfer]] = defaultdict(list)
    for t in queue:
        by_currency[t.currency].append(t)
    released: list[QueuedTransfer] = []
    released_by: dict[str, Pass] = {}
    positions: dict[tuple[str, str], int] = {}
    value: dict[str, int] = {}
    used: dict[str, int] = {}
    exact: dict[str, ExactOutcome] = {}
    for currency in sorted(by_currency):
        book = make_book(by_currency[currency], balances, currency)
        chosen, by, outcome = _resolve_book(
            book, balances, mode, exact_time_limit_s, exact_size_max
        )
        if outcome is not None:
            exact[currency] = outcome
        projected = book.project(chosen)
        for p, name in enumerate(book.names):
            positions[(name, currency)] = projected[p]
        value[currency] = sum(book.amount[i] for i in chosen)
        used[currency] = sum(max(0, book.position[p] - projected[p]) for p in range(len(projected)))
        for i in chosen:
            released.append(book.txs[i])
            released_by[book.txs[i].id] = by[i]
    released.sort(key=queue_order_key)
    ids = {t.id for t in released}
    rest = sorted((t for t in queue if t.id not in ids), key=queue_order_key)
    return Resolution(
        released=tuple(t.id for t in released),
        released_by=released_by,
        positions_minor=positions,
        value_released_minor=value,
        liquidity_used_minor=used,
        still_queued=tuple(t.id for t in rest),
        exact=exact,
    )


def make_book(txs: Sequence[QueuedTransfer], balances: Balances, currency: str) -> lsm_passes.Book:
    """Index one currency's queue, in canonical order so input order cannot matter."""
    txs = sorted(txs, key=queue_order_key)
    index: dict[str, int] = {}
    for t in txs:
        index.setdefault(t.payer, len(index))
        index.setdefault(t.payee, len(index))
    names = list(index)
    snaps = [balances.get((name, currency), NO_POSITION) for name in names]
    return lsm_passes.Book(
        txs=txs,
        names=names,
        payer=[index[t.payer] for t in txs],
        payee=[index[t.payee] for t in txs],
        amount=[t.amount.minor for t in txs],
        rank=[PRIORITY_RANK[t.priority] for t in txs],
        position=[s.position_minor for s in snaps],
        floor=[s.floor_minor for s in snaps],
    )


def _resolve_book(
    book: lsm_passes.Book, balances: Balances, mode: Pass, time_limit_s: float, size_max: int
) -> tuple[list[int], dict[int, Pass], ExactOutcome | None]:
    """Run the passes up to `mode` on one currency; return chosen indices and their pass."""
    included, projected = lsm_passes.fifo(book)
    by = {i: Pass.FIFO for i in range(len(included)) if included[i]}
    if mode in (Pass.BYPASS, Pass.EXACT):
        fifo_included = list(included)
        relaxed = lsm_passes.relax(book, included) if lsm_passes.relaxation_fits(included) else None
        lsm_passes.bypass(book, included, projected, relaxed)
        lsm_groups.add_cycles(book, included, projected)
        if relaxed is not None and lsm_lns.improve(
            book, included, projected, fifo_included, relaxed
        ):
            lsm_passes.readd(book, included, projected)
            lsm_groups.add_cycles(book, included, projected)
        for i, done in enumerate(included):
            if done and not fifo_included[i]:
                by[i] = Pass.BYPASS
    chosen = sorted(by)
    if mode is not Pass.EXACT:
        return chosen, by, None
    if len(book.txs) > size_max:
        return chosen, by, ExactOutcome(ExactStatus.TOO_LARGE)
    heuristic_minor = sum(book.amount[i] for i in chosen)
    result = lsm_exact.solve(book, time_limit_s=time_limit_s)
    outcome = _judge_exact(book, balances, result, heuristic_minor)
    if outcome.status is not ExactStatus.ACCEPTED:
        return chosen, by, outcome
    assert result.chosen is not None
    by = {i: by.get(i, Pass.EXACT) for i in result.chosen}
    return sorted(by), by, outcome


def _judge_exact(
    book: lsm_passes.Book, balances: Balances, result: lsm_exact.ExactResult, heuristic_minor: int
) -> ExactOutcome:
    """Accept the solver's answer only if it is better in exact integers and breaks no floor."""
    optimal = result.status is lsm_exact.SolveStatus.OPTIMAL
    if result.chosen is None:
        status = ExactStatus.TIME_LIMIT
        if result.status is not lsm_exact.SolveStatus.LIMIT:
            status = ExactStatus.SOLVER_ERROR
        return ExactOutcome(status, 0, result.bound_minor)
    value_minor = sum(book.amount[i] for i in result.chosen)
    if value_minor <= heuristic_minor:
        status = ExactStatus.NOT_BETTER if optimal else ExactStatus.TIME_LIMIT
        return ExactOutcome(status, value_minor, result.bound_minor, optimal)
    txs = [book.txs[i] for i in result.chosen]
    if check_release(txs, balances):
        return ExactOutcome(ExactStatus.RECHECK_FAILED, value_minor, result.bound_minor)
    return ExactOutcome(ExactStatus.ACCEPTED, value_minor, result.bound_minor, optimal)


def check_release(released: Iterable[QueuedTransfer], balances: Balances) -> list[Problem]:
    """Re-check a release in exact integers against `balances`; empty means safe to apply.

    Independent of the passes on purpose: it is the second path that states the same facts
    (every floor holds, each transfer once, net changes sum to zero per currency).
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    delta: dict[tuple[str, str], int] = defaultdict(int)
    for t in released:
        if t.id in seen:
            problems.append(Problem(ProblemKind.DUPLICATE, t.currency, t.payer, f"{t.id} twice"))
            continue
        seen.add(t.id)
        delta[(t.payer, t.currency)] -= t.amount.minor
        delta[(t.payee, t.currency)] += t.amount.minor
    net: dict[str, int] = defaultdict(int)
    for (participant, currency), change in sorted(delta.items()):
        net[currency] += change
        snap = balances.get((participant, currency), NO_POSITION)
        end = snap.position_minor + change
        if end < snap.floor_minor:
            msg = f"would end at {end}, below its floor {snap.floor_minor}"
            problems.append(Problem(ProblemKind.FLOOR, currency, participant, msg))
    for currency, total in sorted(net.items()):
        if total != 0:
            msg = f"net changes sum to {total}"
            problems.append(Problem(ProblemKind.UNBALANCED, currency, "", msg))
    return problems


def queue_order_key(t: QueuedTransfer) -> tuple[int, int, str]:
    """(priority, arrival) order: urgent first, then by arrival; the id breaks ties."""
    return (PRIORITY_RANK[t.priority], t.seq, t.id)


def _check_queue(queue: Sequence[QueuedTransfer]) -> None:
    if len(queue) > QUEUE_LEN_MAX:
        raise ValueError(f"queue of {len(queue)} transfers exceeds {QUEUE_LEN_MAX}")
    ids = {t.id for t in queue}
    if len(ids) != len(queue):
        raise ValueError("queue holds the same transfer id twice")
