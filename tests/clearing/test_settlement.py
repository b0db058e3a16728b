"""Settlement state machine: confirmations, idempotent repeats, refusals, abort, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clearing import settlement as st
from clearing.ports import ClearingError, SettlementLine, SettlementState, SettlementView

T = datetime(2025, 7, 1, 10, tzinfo=UTC)


def _view() -> SettlementView:
    lines = (SettlementLine("p1", "HKD", -500), SettlementLine("p2", "HKD", 500),
             SettlementLine("p3", "HKD", 0))  # fmt: skip
    return SettlementView(7, SettlementState.PENDING_SETTLEMENT, (3, 4), lines)


def test_settled_only_when_every_payment_is_confirmed_and_history_says_who_and_when() -> None:
    v = _view()
    c1 = st.confirm(v, "p1", "HKD", "CHATS-001", "alice", T)
    assert c1.view.state is SettlementState.PENDING_SETTLEMENT and not c1.settled
    c2 = st.confirm(c1.view, "p2", "HKD", "CHATS-002", "bob", T + timedelta(minutes=5))
    assert c2.settled and c2.view.state is SettlementState.SETTLED
    assert [(e.state, e.actor, e.at) for e in c2.view.events] == [
        ("CONFIRMED", "alice", T), ("SETTLED", "bob", T + timedelta(minutes=5)),
    ]  # fmt: skip
    assert st.position_deltas(c2.view.lines) == {("p1", "HKD"): -500, ("p2", "HKD"): 500}


def test_repeating_a_confirmation_changes_nothing_but_another_reference_is_refused() -> None:
    c1 = st.confirm(_view(), "p1", "HKD", "CHATS-001", "alice", T)
    again = st.confirm(c1.view, "p1", "HKD", "CHATS-001", "carol", T + timedelta(hours=1))
    assert again.event is None and again.view == c1.view
    with pytest.raises(ClearingError, match="already confirmed with reference CHATS-001"):
        st.confirm(c1.view, "p1", "HKD", "CHATS-999", "alice", T)


@pytest.mark.parametrize(
    ("pid", "ccy", "ref", "actor", "match"),
    [
        ("p9", "HKD", "R", "a", "no line for p9 HKD"),
        ("p3", "HKD", "R", "a", "nothing to settle"),
        ("p1", "HKD", "", "a", "reference"),
        ("p1", "HKD", "R" * 36, "a", "reference"),
        ("p1", "HKD", "R", "", "actor"),
    ],
)
def test_bad_confirmations_are_refused(
    pid: str, ccy: str, ref: str, actor: str, match: str
) -> None:
    with pytest.raises(ClearingError, match=match):
        st.confirm(_view(), pid, ccy, ref, actor, T)


def test_abort_is_final_and_only_before_settlement() -> None:
    a = st.abort(_view(), "ops", T, "CHATS outage")
    assert a.view.state is SettlementState.ABORTED and a.view.events[-1].detail == "CHATS outage"
    assert st.abort(a.view, "ops", T).event is None  # idempotent
    with pytest.raises(ClearingError, match="ABORTED"):
        st.confirm(a.view, "p1", "HKD", "R1", "alice", T)
    done = st.confirm(
        st.confirm(_view(), "p1", "HKD", "R1", "a", T).view, "p2", "HKD", "R2", "a", T
    )
    with pytest.raises(ClearingError, match="cannot be aborted"):
        st.abort(done.view, "ops", T)


def test_a_settlement_with_only_zero_nets_needs_no_payment() -> None:
    assert st.settles_at_once((SettlementLine("p1", "HKD", 0),))
    assert not st.settles_at_once(_view().lines)
