"""Multilateral netting, settlement instructions, efficiency and the bilateral view, checked
against nets recomputed directly from random flows."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from clearing.netting import bilateral, net_by_currency
from clearing.ports import WindowTotal

PARTS = ("p1", "p2", "p3", "p4", "p5")
flows = st.lists(
    st.tuples(
        st.sampled_from(PARTS),
        st.sampled_from(PARTS),
        st.sampled_from(("HKD", "CNY", "MOP")),
        st.integers(min_value=1, max_value=10**9),
    ).filter(lambda f: f[0] != f[1]),
    max_size=60,
)


def _totals(fl: list[tuple[str, str, str, int]], windows: int = 2) -> list[WindowTotal]:
    """Running totals as the store keeps them, spread over several windows."""
    acc: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, (payer, payee, ccy, amt) in enumerate(fl):
        acc[(i % windows, payer, ccy)][0] += amt
        acc[(i % windows, payee, ccy)][1] += amt
    return [WindowTotal(p, c, d, cr) for (_, p, c), (d, cr) in acc.items()]


@given(flows)
def test_nets_sum_to_zero_and_instructions_settle_exactly_the_nets(fl: list) -> None:  # type: ignore[type-arg]
    want: dict[tuple[str, str], int] = defaultdict(int)
    gross: dict[str, int] = defaultdict(int)
    for payer, payee, ccy, amt in fl:
        want[(payer, ccy)] -= amt
        want[(payee, ccy)] += amt
        gross[ccy] += amt
    result = net_by_currency(_totals(fl))
    assert {cn.currency for cn in result} == set(gross)
    for cn in result:
        got = {(ln.participant_id, ln.currency): ln.net for ln in cn.lines}
        assert got == {k: v for k, v in want.items() if k[1] == cn.currency}
        assert sum(got.values()) == 0
        assert cn.gross_minor == gross[cn.currency]
        signed = {i.participant_id: (-1 if i.direction == "pay" else 1) * i.amount.minor
                  for i in cn.instructions}  # fmt: skip
        assert signed == {p: v for (p, c), v in got.items() if v != 0}
        assert cn.net_minor == sum(v for v in got.values() if v > 0)
        assert all(i.amount.currency == cn.currency for i in cn.instructions)
        if cn.net_minor:
            assert cn.efficiency == cn.gross_minor / cn.net_minor
            assert cn.efficiency >= 1.0
        else:
            assert cn.efficiency is None


@given(flows)
def test_bilateral_nets_add_up_to_the_multilateral_net(fl: list) -> None:  # type: ignore[type-arg]
    multi = {
        (ln.participant_id, ln.currency): ln.net
        for cn in net_by_currency(_totals(fl, windows=1))
        for ln in cn.lines
    }
    from_pairs: dict[tuple[str, str], int] = defaultdict(int)
    for b in bilateral(fl):
        assert b.a < b.b
        from_pairs[(b.a, b.currency)] -= b.net
        from_pairs[(b.b, b.currency)] += b.net
    for key, v in multi.items():
        assert from_pairs[key] == v


def test_a_cycle_nets_to_nothing_and_settlement_systems_are_per_currency() -> None:
    fl = [("p1", "p2", "HKD", 100), ("p2", "p3", "HKD", 100), ("p3", "p1", "HKD", 100),
          ("p1", "p2", "CNY", 70), ("p1", "p2", "MOP", 5)]  # fmt: skip
    by = {cn.currency: cn for cn in net_by_currency(_totals(fl))}
    assert by["HKD"].instructions == () and by["HKD"].efficiency is None
    assert by["HKD"].gross_minor == 300
    assert {cn.currency: cn.settlement_system for cn in by.values()} == {
        "HKD": "HK CHATS", "CNY": "CNAPS HVPS", "MOP": "Macau RTGS",
    }  # fmt: skip
    (pay, recv) = by["CNY"].instructions
    assert (pay.participant_id, pay.direction, pay.amount.minor) == ("p1", "pay", 70)
    assert (recv.participant_id, recv.direction, recv.amount.minor) == ("p2", "receive", 70)
