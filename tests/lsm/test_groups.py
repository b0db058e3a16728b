"""Bypass steps after FIFO: guided offsetting and adding whole cycles of left-out transfers."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing import lsm_groups, lsm_passes
from clearing.lsm import Pass, PositionSnapshot, check_release, make_book, resolve

from .reference import balances, queues
from .test_cases import CYCLE, tx


def _start(queue, bal, *, readd: bool):
    book = make_book(queue, bal, "HKD")
    included, projected = lsm_passes.fifo(book)
    if readd:
        lsm_passes.readd(book, included, projected)
    return book, included, projected


@settings(max_examples=200, deadline=None)
@given(queues(size_max=16, currencies=("HKD",)), balances(currencies=("HKD",)), st.booleans())
def test_cycles_keep_floors_and_only_add(queue, bal, readd: bool) -> None:
    book, included, projected = _start(queue, bal, readd=readd)
    before = list(included)
    added = lsm_groups.add_cycles(book, included, projected)
    assert all(included[i] for i in range(len(before)) if before[i]), "a release was taken back"
    assert sorted(added) == [i for i in range(len(before)) if included[i] and not before[i]]
    chosen = [i for i in range(len(included)) if included[i]]
    assert check_release([book.txs[i] for i in chosen], bal) == []
    assert projected == book.project(chosen)
    value_before = sum(a for a, inc in zip(book.amount, before, strict=True) if inc)
    assert sum(book.amount[i] for i in chosen) >= value_before


@settings(max_examples=100, deadline=None)
@given(queues(size_max=16, currencies=("HKD",)), balances(currencies=("HKD",)))
def test_cycles_are_deterministic(queue, bal) -> None:
    runs = []
    for _ in range(2):
        book, included, projected = _start(queue, bal, readd=True)
        runs.append((lsm_groups.add_cycles(book, included, projected), included, projected))
    assert runs[0] == runs[1]


def test_an_uneven_cycle_that_no_single_transfer_can_start_is_added_whole() -> None:
    """A pays B 100, B pays C 120, C pays A 90: each leg alone breaks its payer's cap.

    Round the cycle A ends 10 down (cap 10), B 20 down (cap 20), C 30 up: it fits.
    """
    queue = [tx("ab", "A", "B", 100, 1), tx("bc", "B", "C", 120, 2), tx("ca", "C", "A", 90, 3)]
    bal = {("A", "HKD"): PositionSnapshot(0, 10), ("B", "HKD"): PositionSnapshot(0, 20)}
    book = make_book(queue, bal, "HKD")
    included, projected = [False] * 3, list(book.position)
    assert lsm_passes.readd(book, included, projected) == []
    added = lsm_groups.add_cycles(book, included, projected)
    assert sorted(book.txs[i].id for i in added) == ["ab", "bc", "ca"]
    assert dict(zip(book.names, projected, strict=True)) == {"A": -10, "B": -20, "C": 30}


def test_a_cycle_one_member_cannot_afford_is_left_queued() -> None:
    queue = [tx("ab", "A", "B", 100, 1), tx("bc", "B", "C", 121, 2), tx("ca", "C", "A", 90, 3)]
    bal = {("A", "HKD"): PositionSnapshot(0, 10), ("B", "HKD"): PositionSnapshot(0, 20)}
    book = make_book(queue, bal, "HKD")
    included, projected = [False] * 3, list(book.position)
    assert lsm_groups.add_cycles(book, included, projected) == []
    assert resolve(queue, bal, mode=Pass.BYPASS).released == ()


@settings(max_examples=200, deadline=None)
@given(
    queues(size_max=16, currencies=("HKD",)),
    balances(currencies=("HKD",)),
    st.data(),
    st.sampled_from(["lifo", "fifo", "shuffle"]),
)
def test_offsetting_with_any_marks_keeps_floors_and_only_adds(queue, bal, data, order) -> None:
    """Whatever `keep` marks (the relaxation's hint, or nonsense), floors hold in integers."""
    book, included, projected = _start(queue, bal, readd=False)
    before = list(included)
    keep = [data.draw(st.booleans()) for _ in included]
    rnd = random.Random(data.draw(st.integers(0, 99)))
    added = lsm_passes.offset(book, included, projected, order=order, rnd=rnd, keep=keep)
    assert all(included[i] for i in range(len(before)) if before[i])
    assert sorted(added) == [i for i in range(len(before)) if included[i] and not before[i]]
    chosen = [i for i in range(len(included)) if included[i]]
    assert check_release([book.txs[i] for i in chosen], bal) == []
    assert projected == book.project(chosen)


def test_marked_transfers_are_dropped_last() -> None:
    """B must drop 100 of its two transfers to C and D; the unmarked one goes, whatever size."""
    queue = [tx("bc", "B", "C", 100, 1), tx("bd", "B", "D", 150, 2)]
    bal = {("B", "HKD"): PositionSnapshot(0, 150)}
    for marked, kept in (("bc", "bc"), ("bd", "bd")):
        book = make_book(queue, bal, "HKD")
        included, projected = [False, False], list(book.position)
        keep = [t.id == marked for t in book.txs]
        added = lsm_passes.offset(book, included, projected, keep=keep)
        assert [book.txs[i].id for i in added] == [kept]


def test_relaxation_marks_what_it_settles_whole() -> None:
    """A 3-cycle of 100s fits whole; a transfer of 500 with 200 of headroom only in part."""
    queue = [*CYCLE, tx("ad", "A", "D", 500, 4)]
    bal = {("A", "HKD"): PositionSnapshot(0, 200)}
    book = make_book(queue, bal, "HKD")
    relaxed = lsm_passes.relax(book, [False] * 4)
    assert relaxed is not None
    keep = relaxed.keep()
    assert {t.id for t, k in zip(book.txs, keep, strict=True) if k} == {"ab", "bc", "ca"}
