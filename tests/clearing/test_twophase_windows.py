"""The two-phase table and the window close schedule."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.model import TransferState
from clearing.twophase import Event, transition
from clearing.windows import CloseSchedule

T = datetime(2025, 7, 1, 4, tzinfo=UTC)
FINAL = (TransferState.COMMITTED, TransferState.ABORTED, TransferState.EXPIRED)


@given(
    state=st.sampled_from(FINAL),
    event=st.sampled_from(list(Event)),
    offset=st.integers(min_value=-100, max_value=100),
)
def test_final_states_never_change(state: TransferState, event: Event, offset: int) -> None:
    assert transition(state, event, T, T + timedelta(seconds=offset)) is None


@pytest.mark.parametrize(
    ("event", "before", "at_or_after"),
    [
        (Event.COMMIT, TransferState.COMMITTED, TransferState.EXPIRED),
        (Event.ABORT, TransferState.ABORTED, TransferState.EXPIRED),
        (Event.EXPIRE, None, TransferState.EXPIRED),
    ],
)
def test_time_decides_first(
    event: Event, before: TransferState | None, at_or_after: TransferState
) -> None:
    R = TransferState.RESERVED
    assert transition(R, event, T, T - timedelta(microseconds=1)) == before
    assert transition(R, event, T, T) == at_or_after
    assert transition(R, event, T, T + timedelta(days=1)) == at_or_after


def test_schedule_daily_times_in_the_schedules_zone_and_intervals() -> None:
    s = CloseSchedule(daily_at=(time(12, 0), time(23, 30)), tz="Asia/Hong_Kong")
    opened = datetime(2025, 7, 1, 3, 0, tzinfo=UTC)  # 11:00 HKT
    assert s.due_at(opened) == datetime(2025, 7, 1, 4, 0, tzinfo=UTC)  # 12:00 HKT
    assert s.due_at(datetime(2025, 7, 1, 4, 0, tzinfo=UTC)) == datetime(
        2025, 7, 1, 15, 30, tzinfo=UTC
    )
    late = datetime(2025, 7, 1, 15, 45, tzinfo=UTC)  # 23:45 HKT: next is tomorrow noon
    assert s.due_at(late) == datetime(2025, 7, 2, 4, 0, tzinfo=UTC)
    both = CloseSchedule(daily_at=(time(12, 0),), interval_s=600, tz="Asia/Hong_Kong")
    assert both.due_at(opened) == opened + timedelta(seconds=600)
    assert CloseSchedule().due_at(opened) is None
    with pytest.raises(ValueError):
        CloseSchedule(interval_s=0)
    with pytest.raises(ValueError, match="time zone"):
        CloseSchedule(tz="Nowhere/Land")
