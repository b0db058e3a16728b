"""Large neighbourhood search, the last bypass step: exact sub-programs over part of a release."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing import lsm_groups, lsm_lns, lsm_passes
from clearing.lsm import Pass, check_release, make_book, resolve

from .reference import balances, exact_max_value, queues
from .test_cases import snap, tx


def _greedy(queue, bal, *, bypass: bool):
    """FIFO, then (when asked) the greedy bypass steps that run before the search."""
    book = make_book(queue, bal, "HKD")
    included, projected = lsm_passes.fifo(book)
    fixed = list(included)
    relaxed = lsm_passes.relax(book, included)
    if bypass:
        lsm_passes.bypass(book, included, projected, relaxed)
        lsm_groups.add_cycles(book, included, projected)
    return book, included, projected, fixed, relaxed


def _value(book, included) -> int:
    return sum(a for a, inc in zip(book.amount, included, strict=True) if inc)


@settings(max_examples=150, deadline=None)
@given(queues(size_max=16, currencies=("HKD",)), balances(currencies=("HKD",)), st.booleans())
def test_search_keeps_floors_and_fifo_and_never_loses_value(queue, bal, bypass: bool) -> None:
    book, included, projected, fixed, relaxed = _greedy(queue, bal, bypass=bypass)
    if relaxed is None:
        return  # nothing left out by FIFO: nothing to search
    before = _value(book, included)
    gained = lsm_lns.improve(book, included, projected, fixed, relaxed)
    chosen = [i for i, inc in enumerate(included) if inc]
    assert check_release([book.txs[i] for i in chosen], bal) == []
    assert projected == book.project(chosen)
    assert all(included[i] for i, f in enumerate(fixed) if f), "a FIFO release was taken back"
    assert gained >= 0
    assert _value(book, included) == before + gained
    assert _value(book, included) <= exact_max_value(queue, bal)


@settings(max_examples=60, deadline=None)
@given(queues(size_max=16, currencies=("HKD",)), balances(currencies=("HKD",)))
def test_search_depends_on_the_snapshot_only(queue, bal) -> None:
    runs = []
    for q in (queue, list(reversed(queue))):
        book, included, projected, fixed, relaxed = _greedy(q, bal, bypass=True)
        if relaxed is not None:
            lsm_lns.improve(book, included, projected, fixed, relaxed)
        runs.append(([book.txs[i].id for i, inc in enumerate(included) if inc], projected))
    assert runs[0] == runs[1]


# Five participants with small caps: the greedy steps release 10 of the 17 that fit.
TANGLE = [
    tx("t0", "B", "E", 23, 0),
    tx("t1", "C", "B", 23, 1),
    tx("t2", "C", "E", 6, 2),
    tx("t3", "B", "D", 2, 3),
    tx("t4", "E", "D", 11, 4),
    tx("t5", "C", "B", 8, 5),
]
TANGLE_CAPS = {"A": 12, "B": 1, "C": 10, "D": 1, "E": 8}


def test_search_finds_the_release_the_greedy_steps_miss() -> None:
    bal = {(p, "HKD"): snap(0, cap) for p, cap in TANGLE_CAPS.items()}
    book, included, _, _, _ = _greedy(TANGLE, bal, bypass=True)
    best = exact_max_value(TANGLE, bal)
    assert _value(book, included) < best
    res = resolve(TANGLE, bal, mode=Pass.BYPASS)
    assert res.value_released_minor["HKD"] == best
    assert set(res.released_by.values()) <= {Pass.FIFO, Pass.BYPASS}
    assert check_release([t for t in TANGLE if t.id in res.released], bal) == []


def test_neighbourhood_is_bounded_and_never_frees_fifo(monkeypatch) -> None:
    bal = {(p, "HKD"): snap(0, cap) for p, cap in TANGLE_CAPS.items()}
    book, included, _, fixed, relaxed = _greedy(TANGLE, bal, bypass=True)
    assert relaxed is not None
    whole = lsm_lns.neighbourhood(book, included, fixed, relaxed)
    assert whole and not any(fixed[i] for i in whole)
    monkeypatch.setattr(lsm_lns, "LNS_VARS_MAX", 2)
    part = lsm_lns.neighbourhood(book, included, fixed, relaxed)
    assert len(part) == min(2, len(whole)) and set(part) <= set(whole)
