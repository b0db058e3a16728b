"""Resolver invariants on random queues, against brute-force reference models."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.lsm import (
    Pass,
    PositionSnapshot,
    QueuedTransfer,
    Resolution,
    check_release,
    resolve,
)

from .reference import (
    PARTICIPANTS,
    balances,
    exact_max_value,
    fifo_feasible_prefixes,
    queues,
    sender_queues,
    snapshot,
    value_of,
)

FAST = settings(max_examples=200, deadline=None)
SOLVER = settings(max_examples=60, deadline=None)


def released(res: Resolution, queue: list[QueuedTransfer]) -> list[QueuedTransfer]:
    by_id = {t.id: t for t in queue}
    return [by_id[i] for i in res.released]


def assert_sound(res: Resolution, queue: list[QueuedTransfer], bal: dict) -> None:
    """What must hold of any release, whatever pass produced it."""
    out = released(res, queue)
    ids = [t.id for t in out]
    assert len(ids) == len(set(ids)), "a transfer released twice"
    assert set(ids) | set(res.still_queued) == {t.id for t in queue}
    assert not set(ids) & set(res.still_queued)
    assert set(res.released_by) == set(ids)
    assert check_release(out, bal) == []
    expected: dict[tuple[str, str], int] = {}
    for t in queue:
        for p in (t.payer, t.payee):
            expected[(p, t.currency)] = snapshot(bal, p, t.currency).position_minor
    for t in out:
        expected[(t.payer, t.currency)] -= t.amount.minor
        expected[(t.payee, t.currency)] += t.amount.minor
    assert dict(res.positions_minor) == expected
    net: dict[str, int] = defaultdict(int)
    for (p, c), end in res.positions_minor.items():
        assert end >= snapshot(bal, p, c).floor_minor, f"{p} {c} below its floor"
        net[c] += end - snapshot(bal, p, c).position_minor
    assert all(v == 0 for v in net.values()), "net changes must sum to zero per currency"
    for c in {t.currency for t in queue}:
        assert res.value_released_minor[c] == value_of([t for t in out if t.currency == c])


@FAST
@given(queues(size_max=14), balances(), st.sampled_from([Pass.FIFO, Pass.BYPASS]))
def test_every_release_is_sound(queue: list[QueuedTransfer], bal: dict, mode: Pass) -> None:
    assert_sound(resolve(queue, bal, mode=mode), queue, bal)


@FAST
@given(queues(size_max=12), balances())
def test_fifo_is_the_largest_order_preserving_release(
    queue: list[QueuedTransfer], bal: dict
) -> None:
    res = resolve(queue, bal, mode=Pass.FIFO)
    out = set(res.released)
    assert set(res.released_by.values()) <= {Pass.FIFO}
    counts: dict[tuple[str, str], int] = {}
    for c in {t.currency for t in queue}:
        mine = [t for t in queue if t.currency == c]
        for sender, q in sender_queues(mine).items():
            flags = [t.id in out for t in q]
            k = sum(flags)
            assert flags == [True] * k + [False] * (len(q) - k), f"{sender} not a prefix"
            counts[(sender, c)] = k
        prefixes = fifo_feasible_prefixes(mine, bal)
        best = max(
            value_of([t for s, q in sender_queues(mine).items() for t in q[: v[s]]])
            for v in prefixes
        )
        assert res.value_released_minor[c] == best
        for v in prefixes:  # every feasible prefix vector lies below the one found
            assert all(k <= counts[(s, c)] for s, k in v.items())


@FAST
@given(
    queues(size_max=14), balances(), st.randoms(use_true_random=False), st.sampled_from(list(Pass))
)
def test_result_does_not_depend_on_input_order(
    queue: list[QueuedTransfer], bal: dict, rnd, mode: Pass
) -> None:
    shuffled = list(queue)
    rnd.shuffle(shuffled)
    assert resolve(shuffled, bal, mode=mode) == resolve(queue, bal, mode=mode)


@FAST
@given(
    queues(size_max=14),
    balances(),
    st.sampled_from(PARTICIPANTS),
    st.sampled_from(["HKD", "MOP"]),
    st.integers(0, 200),
    st.integers(0, 200),
)
def test_fifo_never_shrinks_when_a_cap_or_balance_rises(
    queue: list[QueuedTransfer], bal: dict, who: str, ccy: str, cap_up: int, pos_up: int
) -> None:
    before = set(resolve(queue, bal, mode=Pass.FIFO).released)
    s = snapshot(bal, who, ccy)
    raised = dict(bal)
    raised[(who, ccy)] = PositionSnapshot(s.position_minor + pos_up, s.cap_minor + cap_up)
    after = set(resolve(queue, raised, mode=Pass.FIFO).released)
    assert before <= after


@SOLVER
@given(queues(size_max=16, currencies=("HKD",)), balances(currencies=("HKD",)))
def test_exact_equals_brute_force_and_passes_only_add_value(
    queue: list[QueuedTransfer], bal: dict
) -> None:
    values = {}
    for mode in Pass:
        res = resolve(queue, bal, mode=mode)
        assert_sound(res, queue, bal)
        values[mode] = res.value_released_minor.get("HKD", 0)
    assert values[Pass.FIFO] <= values[Pass.BYPASS] <= values[Pass.EXACT]
    assert values[Pass.EXACT] == exact_max_value(queue, bal)


@FAST
@given(queues(size_max=14), balances(), st.data())
def test_check_release_names_every_broken_floor(
    queue: list[QueuedTransfer], bal: dict, data: st.DataObject
) -> None:
    """An arbitrary subset is refused exactly when some participant would end below its floor."""
    subset = [t for t in queue if data.draw(st.booleans())]
    problems = check_release(subset, bal)
    ends: dict[tuple[str, str], int] = defaultdict(int)
    for t in subset:
        ends[(t.payer, t.currency)] -= t.amount.minor
        ends[(t.payee, t.currency)] += t.amount.minor
    broken = {
        (p, c)
        for (p, c), d in ends.items()
        if snapshot(bal, p, c).position_minor + d < snapshot(bal, p, c).floor_minor
    }
    assert {(x.participant, x.currency) for x in problems} == broken
