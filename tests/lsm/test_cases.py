"""Fixed resolver cases: the situations an operator would recognise, each checked by hand."""

from __future__ import annotations

import copy

import pytest

from clearing.lsm import (
    ExactStatus,
    Pass,
    PositionSnapshot,
    Priority,
    ProblemKind,
    QueuedTransfer,
    check_release,
    resolve,
)
from clearing.money import Money


def tx(
    id: str, payer: str, payee: str, minor: int, seq: int, *, ccy: str = "HKD", urgent: bool = False
) -> QueuedTransfer:
    prio = Priority.URGENT if urgent else Priority.NORMAL
    return QueuedTransfer(id, payer, payee, Money(minor, ccy), prio, seq)


def snap(position: int = 0, cap: int = 0) -> PositionSnapshot:
    return PositionSnapshot(position, cap)


CYCLE = [tx("ab", "A", "B", 100, 1), tx("bc", "B", "C", 100, 2), tx("ca", "C", "A", 100, 3)]


@pytest.mark.parametrize("mode", list(Pass))
def test_equal_cycle_with_zero_liquidity_releases_entirely(mode: Pass) -> None:
    res = resolve(CYCLE, {}, mode=mode)
    assert set(res.released) == {"ab", "bc", "ca"}
    assert res.released_by == {"ab": Pass.FIFO, "bc": Pass.FIFO, "ca": Pass.FIFO}
    assert res.value_released_minor == {"HKD": 300}
    assert res.liquidity_used_minor == {"HKD": 0}
    assert all(v == 0 for v in res.positions_minor.values())


UNEQUAL = [tx("ab", "A", "B", 100, 1), tx("bc", "B", "C", 100, 2), tx("ca", "C", "A", 60, 3)]


@pytest.mark.parametrize("mode", list(Pass))
def test_unequal_cycle_needs_the_net_debtors_headroom(mode: Pass) -> None:
    # A is the net debtor of the cycle by 40.
    tight = {("A", "HKD"): snap(cap=39)}
    assert resolve(UNEQUAL, tight, mode=mode).released == ()
    enough = {("A", "HKD"): snap(cap=40)}
    res = resolve(UNEQUAL, enough, mode=mode)
    assert set(res.released) == {"ab", "bc", "ca"}
    assert res.positions_minor[("A", "HKD")] == -40
    assert res.liquidity_used_minor == {"HKD": 40}


def test_bilateral_pair_offsets_within_the_smaller_cap() -> None:
    queue = [tx("ab", "A", "B", 500, 1), tx("ba", "B", "A", 420, 2)]
    assert resolve(queue, {("A", "HKD"): snap(cap=79)}).released == ()
    res = resolve(queue, {("A", "HKD"): snap(cap=80)})
    assert res.released == ("ab", "ba")
    assert res.positions_minor == {("A", "HKD"): -80, ("B", "HKD"): 80}


def test_participant_already_over_its_cap_may_not_get_worse_but_may_offset() -> None:
    over = {("A", "HKD"): snap(position=-500, cap=300), ("B", "HKD"): snap(position=500)}
    assert resolve([tx("ab", "A", "B", 100, 1)], over).released == ()
    pair = [tx("ab", "A", "B", 100, 1), tx("ba", "B", "A", 100, 2)]
    assert resolve(pair, over).released == ("ab", "ba")
    better = [tx("ab", "A", "B", 100, 1), tx("ba", "B", "A", 150, 2)]
    res = resolve(better, over)
    assert res.released == ("ab", "ba")
    assert res.positions_minor[("A", "HKD")] == -450


@pytest.mark.parametrize("mode", list(Pass))
def test_empty_queue(mode: Pass) -> None:
    res = resolve([], {("A", "HKD"): snap(cap=10)}, mode=mode)
    assert res.released == () and res.still_queued == ()
    assert res.value_released_minor == {} and res.positions_minor == {}
    assert check_release([], {}) == []


def test_urgent_transfers_go_first_in_fifo() -> None:
    queue = [tx("n1", "A", "B", 70, 1), tx("u9", "A", "C", 70, 9, urgent=True)]
    res = resolve(queue, {("A", "HKD"): snap(cap=100)}, mode=Pass.FIFO)
    assert res.released == ("u9",)
    assert res.still_queued == ("n1",)


def test_bypass_releases_later_transfers_largest_first() -> None:
    # FIFO stops at the 95 that does not fit; bypass takes 60 first, so 50 no longer fits
    # but 30 does (smallest first would have taken 30 and 50 instead).
    queue = [
        tx("a1", "A", "B", 20, 1),
        tx("a2", "A", "B", 95, 2),
        tx("a3", "A", "C", 50, 3),
        tx("a4", "A", "D", 60, 4),
        tx("a5", "A", "D", 30, 5),
    ]
    bal = {("A", "HKD"): snap(cap=110)}
    assert resolve(queue, bal, mode=Pass.FIFO).released == ("a1",)
    res = resolve(queue, bal, mode=Pass.BYPASS)
    assert res.released == ("a1", "a4", "a5")
    assert res.released_by == {"a1": Pass.FIFO, "a4": Pass.BYPASS, "a5": Pass.BYPASS}


def test_bypass_sweeps_again_when_a_credit_frees_a_skipped_transfer() -> None:
    # B's 80 to C waits for A's 80 to B, which bypass only reaches after sweeping past it.
    queue = [
        tx("x", "A", "C", 500, 1),
        tx("bc", "B", "C", 80, 2),
        tx("ab", "A", "B", 80, 3),
    ]
    res = resolve(queue, {("A", "HKD"): snap(cap=100)}, mode=Pass.BYPASS)
    assert set(res.released) == {"ab", "bc"}


def test_bypass_offsets_transfers_stuck_behind_a_queue_head() -> None:
    # A's 100 to B heads its queue and blocks FIFO; the pair A->C / C->A offsets exactly.
    queue = [tx("ab", "A", "B", 100, 1), tx("ac", "A", "C", 50, 2), tx("ca", "C", "A", 50, 3)]
    assert resolve(queue, {}, mode=Pass.FIFO).released == ()
    res = resolve(queue, {}, mode=Pass.BYPASS)
    assert res.released == ("ac", "ca")
    assert res.released_by == {"ac": Pass.BYPASS, "ca": Pass.BYPASS}
    assert res.liquidity_used_minor == {"HKD": 0}


def test_exact_pass_beats_the_fast_passes_when_they_are_greedy() -> None:
    queue = [tx("a60", "A", "B", 60, 1), tx("a50", "A", "C", 50, 2), tx("b50", "A", "D", 50, 3)]
    bal = {("A", "HKD"): snap(cap=100)}
    assert resolve(queue, bal, mode=Pass.BYPASS).value_released_minor == {"HKD": 60}
    res = resolve(queue, bal, mode=Pass.EXACT)
    assert res.released == ("a50", "b50")
    assert res.released_by == {"a50": Pass.EXACT, "b50": Pass.EXACT}
    assert res.exact["HKD"].status is ExactStatus.ACCEPTED
    assert res.exact["HKD"].value_minor == 100


def test_exact_pass_reports_when_the_fast_passes_were_already_optimal() -> None:
    res = resolve(UNEQUAL, {("A", "HKD"): snap(cap=40)}, mode=Pass.EXACT)
    assert res.exact["HKD"].status is ExactStatus.NOT_BETTER
    assert set(res.released_by.values()) == {Pass.FIFO}


def test_exact_pass_is_skipped_above_its_size_limit() -> None:
    res = resolve(CYCLE, {}, mode=Pass.EXACT, exact_size_max=2)
    assert res.exact["HKD"].status is ExactStatus.TOO_LARGE
    assert len(res.released) == 3


def test_currencies_resolve_independently() -> None:
    queue = [*CYCLE, tx("m", "A", "B", 100, 4, ccy="MOP")]
    res = resolve(queue, {("A", "MOP"): snap(cap=99)})
    assert set(res.released) == {"ab", "bc", "ca"}
    assert res.still_queued == ("m",)
    assert res.value_released_minor == {"HKD": 300, "MOP": 0}


def test_a_participant_missing_from_the_snapshot_cannot_go_into_debit() -> None:
    res = resolve([tx("ab", "A", "B", 1, 1)], {("B", "HKD"): snap(cap=10**6)})
    assert res.released == ()


def test_a_stale_release_is_refused_and_resolving_changes_nothing() -> None:
    bal = {("A", "HKD"): snap(cap=40)}
    frozen = copy.deepcopy(bal)
    queue = list(UNEQUAL)
    res = resolve(queue, bal, mode=Pass.EXACT)
    assert bal == frozen and queue == UNEQUAL
    out = [t for t in queue if t.id in res.released]
    assert check_release(out, bal) == []
    # A's cover fell before the release could be applied: the re-check names A.
    now = {("A", "HKD"): snap(position=-5, cap=40)}
    problems = check_release(out, now)
    assert [(p.kind, p.participant, p.currency) for p in problems] == [
        (ProblemKind.FLOOR, "A", "HKD")
    ]


def test_check_release_refuses_a_transfer_twice() -> None:
    problems = check_release([CYCLE[0], CYCLE[1], CYCLE[2], CYCLE[0]], {})
    assert [p.kind for p in problems] == [ProblemKind.DUPLICATE]


def test_caller_bugs_raise() -> None:
    with pytest.raises(ValueError, match="same transfer id"):
        resolve([CYCLE[0], CYCLE[0]], {})
    with pytest.raises(ValueError, match="positive"):
        tx("z", "A", "B", 0, 1)
    with pytest.raises(ValueError, match="same"):
        tx("s", "A", "A", 5, 1)
    with pytest.raises(ValueError):
        QueuedTransfer("p", "A", "B", Money(5, "HKD"), "express", 1)  # type: ignore[arg-type]


def test_effective_cap_is_the_lower_of_ndc_and_cover() -> None:
    s = PositionSnapshot.from_limits(-10, ndc_minor=300, cover_minor=120)
    assert s.cap_minor == 120 and s.floor_minor == -120
    assert PositionSnapshot.from_limits(-200, 300, 120).floor_minor == -200
