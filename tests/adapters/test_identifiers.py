"""Identifier rules: known good and bad values, plus property checks against the helpers'
independently written reference rules."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import identifiers as ids
from adapters.cn_ibps import identifiers as cn
from adapters.hk_fps import identifiers as hk
from adapters.mo_fps import identifiers as mo
from tests.adapters.helpers import digit_string, hkid_check, hkids, rics, usccs


@pytest.mark.parametrize("value", ["A1234563", "K6543219", "XA1122336", "Z6837825"])
def test_valid_hkids(value: str) -> None:
    assert hk.hkid_error(value) is None


@pytest.mark.parametrize(
    "value", ["A1234564", "A123456(3)", "a1234563", "A12345633", "1234563", "ABC1234563"]
)
def test_invalid_hkids(value: str) -> None:
    assert hk.hkid_error(value) is not None


@given(
    letters=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2), body=digit_string(6, 6)
)
def test_exactly_one_hkid_check_character_is_valid(letters: str, body: str) -> None:
    good = hkid_check(letters, body)
    for c in "0123456789A":
        assert (hk.hkid_error(letters + body + c) is None) == (c == good)


@given(hkids)
def test_generated_hkids_pass(value: str) -> None:
    assert hk.hkid_error(value) is None


@pytest.mark.parametrize("value", ["1234567" + "4", "9876541", "202506226"])
def test_fps_ids_with_a_luhn_check_digit(value: str) -> None:
    assert hk.fps_id_error(value) is None


@pytest.mark.parametrize("value", ["12345675", "123456", "1234567890", "12345A74", ""])
def test_bad_fps_ids(value: str) -> None:
    assert hk.fps_id_error(value) is not None


@given(digit_string(6, 8), st.integers(0, 9))
def test_fps_id_single_digit_errors_are_caught(body: str, wrong: int) -> None:
    good = hk.fps_id_with_check_digit(body)
    bad = body + str(wrong)
    assert hk.fps_id_error(good) is None
    assert (hk.fps_id_error(bad) is None) == (bad == good)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("+852-91234567", True),
        ("+852-41234567", True),
        ("+852-31234567", False),  # fixed-line prefix
        ("+852-9123456", False),
        ("+85291234567", False),  # ISO 20022 form needs the dash
        ("+86-13800138000", True),
        ("+86-12800138000", False),
        ("+86-1380013800", False),
        ("+853-66123456", True),
        ("+853-28123456", False),
        ("91234567", False),
    ],
)
def test_mobile_numbers_in_iso_form(value: str, ok: bool) -> None:
    assert (ids.mobile_error(value) is None) == ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ka.yan.lee@example.hk", True),
        ("a@b.cn", True),
        ("no-at.example.com", False),
        ("a@b", False),
        ("a b@c.hk", False),
        ("x" * 250 + "@a.hk", False),
    ],
)
def test_email_addresses(value: str, ok: bool) -> None:
    assert (ids.email_error(value) is None) == ok


@given(rics)
def test_resident_ids_with_valid_check_pass(value: str) -> None:
    assert cn.ric_error(value) is None


@given(rics, st.sampled_from("0123456789X"))
def test_resident_id_with_another_check_character_fails(value: str, c: str) -> None:
    changed = value[:-1] + c
    assert (cn.ric_error(changed) is None) == (changed == value)


@given(usccs, st.sampled_from("0123456789ABCDEFGHJKLMNPQRTUWXY"))
def test_uscc_check_character(value: str, c: str) -> None:
    assert cn.uscc_error(value) is None
    changed = value[:-1] + c
    assert (cn.uscc_error(changed) is None) == (changed == value)


@pytest.mark.parametrize(
    ("system", "value", "ok"),
    [
        ("HKNCC", "004", True),
        ("HKNCC", "04", False),
        ("HKNCC", "0040", False),
        ("CNAPS", "102100099996", True),
        ("CNAPS", "102100099999", True),  # the CNAPS check digit is not verified (not public)
        ("CNAPS", "10210009999", False),
        ("MOFPS", "001", True),
        ("MOFPS", "A01", False),
        ("SWIFT", "004", False),
    ],
)
def test_member_ids_by_clearing_system(system: str, value: str, ok: bool) -> None:
    assert (ids.member_id_error(system, value) is None) == ok


@pytest.mark.parametrize(
    ("system", "length", "ok"),
    [
        ("HKNCC", 5, False),
        ("HKNCC", 6, True),
        ("HKNCC", 17, True),
        ("HKNCC", 18, False),
        ("CNAPS", 32, True),
        ("CNAPS", 33, False),
        ("MOFPS", 20, True),
        ("MOFPS", 21, False),
    ],
)
def test_account_number_lengths_by_holding_agent(system: str, length: int, ok: bool) -> None:
    assert (ids.account_error(system, "1" * length) is None) == ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("12345678", True), ("52345678", True), ("22345678", False), ("1234567", False)],
)
def test_macau_bir_format(value: str, ok: bool) -> None:
    assert (mo.bir_error(value) is None) == ok


@pytest.mark.parametrize(
    ("type_code", "value", "ok"),
    [
        ("HKID", "A1234563", True),
        ("CNRIC", "11010519491231002X", True),
        ("CNRIC", "110105194913310022", False),  # month 13
        ("CNUSCC", "91110000600037341L", True),
        ("MOBIR", "12345678", True),
        ("OTHR", "P1234567", True),
        ("PASSPORT", "P1234567", False),
    ],
)
def test_party_ids_by_type(type_code: str, value: str, ok: bool) -> None:
    assert (ids.party_id_error(type_code, value) is None) == ok


def _stdnum_says_valid(value: str) -> bool:
    """python-stdnum's own verdict, with its KeyError for codes known only above county
    level read as "not valid" (the adapter must never let that exception through)."""
    from stdnum.cn import ric

    try:
        return bool(ric.is_valid(value))
    except KeyError:
        return False


# Region codes: assigned ones, retired ones, ones never assigned, and 110003, which
# python-stdnum knows only above county level (it raises KeyError there).
_REGIONS = ["110105", "310104", "440106", "440300", "110003", "110000", "999999", "000000", "445381"]


@given(
    region=st.sampled_from(_REGIONS),
    born=st.dates(datetime(1900, 1, 1).date(), datetime(2030, 12, 31).date()),
    seq=st.integers(0, 999),
    check=st.sampled_from([None, *"0123456789X"]),
)
def test_resident_id_check_agrees_with_python_stdnum(region: str, born, seq: int, check) -> None:
    """The remembered region look-up gives python-stdnum's answer for every ID, whatever the
    region, birth date and check character (right or wrong)."""
    from stdnum.cn import ric

    body = f"{region}{born:%Y%m%d}{seq:03d}"
    value = body + (check if check is not None else ric.calc_check_digit(body + "0"))
    assert (cn.ric_error(value) is None) == _stdnum_says_valid(value)


def test_resident_id_region_known_only_above_county_level_is_refused_not_raised() -> None:
    from stdnum.cn import ric

    body = "11000319900101123"
    value = body + ric.calc_check_digit(body + "0")
    assert cn.ric_error(value) is not None
