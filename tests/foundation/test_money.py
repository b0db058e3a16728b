"""Money: exact decimal <-> minor units, and every rejection the canonical model promises."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.money import AMOUNT_MINOR_MAX, CURRENCY_EXPONENTS, Money, MoneyError

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
minors = st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX)


@given(minors, currencies)
def test_format_parse_round_trip(minor: int, ccy: str) -> None:
    m = Money(minor, ccy)
    assert Money.parse(m.format(), ccy, allow_negative=True) == m


@given(minors, currencies)
def test_format_matches_decimal_reference(minor: int, ccy: str) -> None:
    exp = CURRENCY_EXPONENTS[ccy]
    expected = Decimal(minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))
    assert Money(minor, ccy).format() == str(expected)
    assert Money(minor, ccy).to_decimal() == Decimal(minor).scaleb(-exp)


@given(st.integers(0, 10**12), st.integers(0, 99), currencies)
def test_parse_matches_decimal_reference(units: int, cents: int, ccy: str) -> None:
    text = f"{units}.{cents:02d}"
    assert Money.parse(text, ccy).minor == int(Decimal(text) * 100)


@pytest.mark.parametrize(
    ("text", "ccy", "code"),
    [
        ("1.234", "HKD", "AM12"),  # more decimals than the currency has
        ("-1.00", "HKD", "AM12"),  # negative where not allowed
        ("1e5", "HKD", "AM12"),  # exponent notation is not an ISO amount
        ("abc", "CNY", "AM12"),
        ("", "MOP", "AM12"),
        ("1.00", "XYZ", "AM03"),  # unknown currency
        ("1.00", "JPY", "AM03"),  # a real currency Baygate does not clear
        (str(AMOUNT_MINOR_MAX), "HKD", "AM12"),  # beyond the database column margin
        ("1" * 40, "HKD", "AM12"),
        ("١٢.٥", "HKD", "AM12"),  # non-ASCII digits are not an ISO amount
    ],
)
def test_rejections_carry_reason_codes(text: str, ccy: str, code: str) -> None:
    with pytest.raises(MoneyError) as info:
        Money.parse(text, ccy)
    assert info.value.code == code


def test_zero_refused_where_not_allowed() -> None:
    assert Money.parse("0.00", "HKD").minor == 0
    with pytest.raises(MoneyError) as info:
        Money.parse("0", "HKD", allow_zero=False)
    assert info.value.code == "AM01"


def test_trailing_zero_decimals_are_exact() -> None:
    assert Money.parse("10.5000", "HKD") == Money(1050, "HKD")


def test_float_minor_units_refused() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "HKD")  # type: ignore[arg-type]


def test_arithmetic_refuses_mixed_currencies() -> None:
    assert Money(100, "HKD") + Money(50, "HKD") == Money(150, "HKD")
    with pytest.raises(ValueError):
        Money(100, "HKD") + Money(100, "CNY")
