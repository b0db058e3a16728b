"""Mainland identifiers: CNAPS bank codes, resident ID (GB 11643), USCC (GB 32100), accounts.

Resident ID and USCC checks come from python-stdnum. The CNAPS code's check digit algorithm is
not public, so only its shape (12 digits) is checked.
"""

from __future__ import annotations

import re

from stdnum.cn import ric, uscc

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
    if not ric.is_valid(value):
        return "resident ID is not valid (GB 11643 birth date or check character)"
    return None


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
