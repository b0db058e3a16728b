"""Mainland identifiers: CNAPS bank codes, resident ID (GB 11643), USCC (GB 32100), accounts.

Resident ID and USCC checks come from python-stdnum. The CNAPS code's check digit algorithm is
not public, so only its shape (12 digits) is checked.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

CLEARING_SYSTEM = "CNAPS"

_MEMBER_RE = re.compile(r"^\d{12}$", re.ASCII)  # 3 bank + 4 area + 4 branch + 1 check digit
_ACCOUNT_RE = re.compile(r"^\d{6,32}$", re.ASCII)
_COMPACT_RE = re.compile(r"^[0-9A-Z]{18}$", re.ASCII)


def member_id_error(value: str) -> str | None:
    if _MEMBER_RE.fullmatch(value):
        return None
    return f"CNAPS bank code {value[:40]!r} must be 12 digits"


def ric_error(value: str) -> str | None:
    if not _COMPACT_RE.fullmatch(value):
        return "resident ID must be 18 characters (digits, final X allowed)"
    if not _ric_valid(value):
        return "resident ID is not valid (GB 11643 birth date or check character)"
    return None


# Distinct (region, birth year) pairs whose look-up is remembered: a few thousand regions.
REGION_YEARS_MAX = 8192


def _ric_valid(number: str) -> bool:
    """`ric.is_valid` for 18 upper-case ASCII characters, with the region look-up remembered.

    The region table look-up (GB/T 2260, in python-stdnum) is most of the cost of checking
    an ID, and payers share regions and birth years; the check character and the date
    are checked for every ID, as `ric.validate` does."""
    if not number[:17].isdigit() or number[-1] != ric.calc_check_digit(number):
        return False
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return _region_known(number[:6], number[6:10])


@functools.lru_cache(maxsize=REGION_YEARS_MAX)
def _region_known(region: str, year: str) -> bool:
    """Whether python-stdnum knows `region` as assigned in `year` (any date of that year).

    python-stdnum 2.x raises KeyError, not a ValidationError, for a code its table knows
    only above county level (110003...): such an ID is refused like any unknown region,
    never let through as an exception (a 500 for what is a bad field)."""
    try:
        ric.get_birth_place(f"{region}{year}01010000")
    except (ValidationError, KeyError):
        return False
    return True


def uscc_error(value: str) -> str | None:
    if not _COMPACT_RE.fullmatch(value):
        return "USCC must be 18 characters"
    if not uscc.is_valid(value):
        return "USCC is not valid (GB 32100 check character)"
    return None


def account_error(value: str) -> str | None:
    if _ACCOUNT_RE.fullmatch(value):
        return None
    return "Mainland account number must be 6 to 32 digits"
