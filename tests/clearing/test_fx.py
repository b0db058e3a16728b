"""FX: exact half-up rounding to the minor unit, spreads, quotes, the provider's own cap."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.engine import MemoryEngine
from clearing.fx import FX_PAIRS, Rate, check_fx, convert, make_quote
from clearing.money import AMOUNT_MINOR_MAX, Money
from clearing.ports import Leg, ReserveRequest
from clearing.reasons import Reason

NOW = datetime(2025, 7, 1, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minor", "rate", "expected"),
    [
        (1, "0.5", 1),  # 0.005 -> 0.01: half rounds up (half-even would give 0.00)
        (3, "0.5", 2),  # 0.015 -> 0.02
        (5, "0.5", 3),  # 0.025 -> 0.03 (half-even would give 0.02)
        (1, "0.4999", 0),  # 0.004999 -> 0.00
        (100_000, "0.91724", 91_724),
        (123_457, "0.91724", 113_240),  # 1234.57 * 0.91724 = 1132.3963868 -> 1132.40
        (10_000_000, "1.08700000", 10_870_000),
    ],
)
def test_conversion_rounds_half_up_to_the_minor_unit(minor: int, rate: str, expected: int) -> None:
    assert convert(Money(minor, "HKD"), Decimal(rate), "CNY") == Money(expected, "CNY")


@given(
    minor=st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX // 2),
    rate=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("2"), places=8),
)
def test_conversion_matches_exact_fraction_arithmetic(minor: int, rate: Decimal) -> None:
    exact = Fraction(minor) * Fraction(rate)
    half_up = int(exact + Fraction(1, 2))  # floor(x + 1/2) for positive x
    assert convert(Money(minor, "MOP"), rate, "HKD").minor == half_up


def test_client_rate_takes_the_spread_off_the_mid_rate() -> None:
    assert Rate("HKD", "CNY", Decimal("0.92"), 30).client_rate == Decimal("0.91724000")
    assert Rate("CNY", "HKD", Decimal("1.087"), 0).client_rate == Decimal("1.08700000")
    with pytest.raises(ValueError, match="pair"):
        Rate("HKD", "USD", Decimal("0.13"), 10)
    with pytest.raises(ValueError, match="spread"):
        Rate("HKD", "CNY", Decimal("0.92"), 5_000)


def test_every_corridor_pair_is_convertible_both_ways() -> None:
    for a, b in (("HKD", "CNY"), ("MOP", "CNY"), ("MOP", "HKD")):
        assert (a, b) in FX_PAIRS and (b, a) in FX_PAIRS


def _legs(quote_rate: Decimal, src_minor: int = 100_000, fx: str = "fx") -> tuple[Leg, Leg]:
    src = Money(src_minor, "HKD")
    return Leg("pa", fx, src), Leg(fx, "pb", convert(src, quote_rate, "CNY"))


def test_quote_locks_the_rate_until_it_expires() -> None:
    q = make_quote("q1", Rate("HKD", "CNY", Decimal("0.92"), 30), "fx", NOW, ttl_s=60)
    legs = _legs(q.rate)
    assert check_fx(legs, "q1", q, NOW) is None
    assert check_fx(legs, "q1", q, q.expires_at - timedelta(microseconds=1)) is None
    expired = check_fx(legs, "q1", q, q.expires_at)
    assert expired is not None and expired.code is Reason.NARR and "expired" in expired.message


def test_unknown_missing_or_mismatched_quotes_are_rejected() -> None:
    q = make_quote("q1", Rate("HKD", "CNY", Decimal("0.92"), 30), "fx", NOW)
    legs = _legs(q.rate)
    assert check_fx(legs, None, None, NOW).code is Reason.NARR  # type: ignore[union-attr]
    unknown = check_fx(legs, "nope", None, NOW)
    assert unknown is not None and "unknown quote nope" in unknown.message
    other = make_quote("q2", Rate("MOP", "CNY", Decimal("0.893"), 30), "fx", NOW)
    assert "is for MOP->CNY" in check_fx(legs, "q2", other, NOW).message  # type: ignore[union-attr]
    wrong_fx = check_fx(_legs(q.rate, fx="fx2"), "q1", q, NOW)
    assert wrong_fx is not None and wrong_fx.code is Reason.AG01
    a, b = legs
    off_by_one = (a, Leg(b.payer, b.payee, Money(b.amount.minor + 1, "CNY")))
    mismatch = check_fx(off_by_one, "q1", q, NOW)
    assert mismatch is not None and mismatch.code is Reason.AM12


def test_fx_provider_position_in_the_target_currency_is_capped() -> None:
    now = [NOW]
    eng = MemoryEngine(lambda: now[0], identity_key=b"k")
    for p in ("pa", "pb"):
        eng.add_participant(p)
    eng.add_participant("fx", role="fx_provider")
    eng.set_limits("pa", "HKD", 10**9, 10**9)
    q = eng.create_quote("HKD", "CNY", ttl_s=60)
    legs = _legs(q.rate)  # pays out 917.24 CNY
    eng.set_limits("fx", "CNY", 91_723, 10**9)
    req = ReserveRequest("t1", legs, "hk-fps", "cn-ibps", NOW + timedelta(seconds=30), "A1", q.id)
    (d,) = eng.reserve_batch([req])
    assert not d.ok and d.rejection is not None
    assert d.rejection.code is Reason.AM04 and d.rejection.message.startswith("fx CNY")
    assert eng.position("pa", "HKD").reserved == 0  # the payer was not charged
    eng.set_limits("fx", "CNY", 91_724, 10**9)
    (d,) = eng.reserve_batch([replace(req, transfer_id="t2")])
    assert d.ok
    assert eng.position("fx", "CNY").reserved == 91_724
    assert eng.position("pa", "HKD").reserved == 100_000
