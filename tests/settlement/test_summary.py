"""The summary CSV read back: every control total recomputed, every inconsistency named."""

from __future__ import annotations

import csv
import io

from clearing import settlement_files as sf
from clearing.money import Money

from . import factory as f


def _summary() -> list[list[str]]:
    parts = f.participants(3)
    rows = [f.row(i, parts[i % 3].id, parts[(i + 1) % 3].id, 1000 * (i + 1)) for i in range(5)]
    data = sf.summary_csv(f.window_of(parts, rows), "HKD")
    return list(csv.reader(io.StringIO(data.decode())))


def _bytes(rows: list[list[str]]) -> bytes:
    return sf.csv_text(rows).encode()


def _bump(text: str, minor: int) -> str:
    return (Money.parse(text, "HKD", allow_negative=True) + Money(minor, "HKD")).format()


def test_generated_summary_reads_back_clean_with_a_zero_net() -> None:
    rows = _summary()
    check = sf.read_summary_csv(_bytes(rows))
    assert check.problems == []
    assert sum(t.net.minor for t in check.positions.values()) == 0
    assert rows[-1][0] == "control" and rows[-1][4] == str(len(check.positions))


def test_edited_position_is_caught_by_the_control_row() -> None:
    rows = _summary()
    rows[1][7] = _bump(rows[1][7], 1)
    rows[1][9] = _bump(rows[1][9], -1)
    rows[1][10] = "pay" if rows[1][9].startswith("-") else "receive"
    rows[1][11] = rows[1][9].lstrip("-")
    problems = sf.read_summary_csv(_bytes(rows)).problems
    assert any("gross debits" in p for p in problems)


def test_positions_and_control_edited_together_still_do_not_balance() -> None:
    rows = _summary()
    rows[1][8] = _bump(rows[1][8], 5)
    rows[1][9] = _bump(rows[1][9], 5)
    rows[1][10] = "pay" if rows[1][9].startswith("-") else "receive"
    rows[1][11] = rows[1][9].lstrip("-")
    rows[-1][8] = _bump(rows[-1][8], 5)
    rows[-1][9] = _bump(rows[-1][9], 5)
    problems = sf.read_summary_csv(_bytes(rows)).problems
    assert any("do not balance" in p for p in problems)


def test_instruction_must_follow_the_sign_of_the_net() -> None:
    rows = _summary()
    rows[1][10] = "receive" if rows[1][10] == "pay" else "pay"
    assert any("instruction" in p for p in sf.read_summary_csv(_bytes(rows)).problems)


def test_missing_control_row_and_foreign_files_are_reported() -> None:
    assert sf.read_summary_csv(_bytes(_summary()[:-1])).problems == ["control row missing"]
    assert sf.read_summary_csv(b"a,b\n1,2\n").problems == ["header differs from the summary format"]
    assert sf.read_summary_csv(b"\xff\xfe").problems[0].startswith("unreadable")


def test_amount_with_too_many_decimals_is_a_problem_not_an_exception() -> None:
    rows = _summary()
    rows[1][7] = rows[1][7] + "1"
    assert any(p.startswith("line 2") for p in sf.read_summary_csv(_bytes(rows)).problems)
