"""Hong Kong identifiers: HKNCC clearing codes, FPS IDs, HKID, account numbers.

Formats marked "assumed" are Baygate's modelling choices (see docs/schemes/hk-fps.md).
"""

from __future__ import annotations

import re

from stdnum import luhn

CLEARING_SYSTEM = "HKNCC"

_MEMBER_RE = re.compile(r"^\d{3}$", re.ASCII)  # assumed: 3-digit bank code, e.g. 003, 004, 012, 024
_FPS_ID_RE = re.compile(r"^\d{7,9}$", re.ASCII)
_HKID_RE = re.compile(r"^([A-Z]{1,2})(\d{6})([0-9A])$", re.ASCII)
_ACCOUNT_RE = re.compile(
    r"^\d{6,17}$", re.ASCII
)  # assumed: branch + account digits, bank code apart


def member_id_error(value: str) -> str | None:
    if _MEMBER_RE.fullmatch(value):
        return None
    return f"HKNCC clearing code {value[:40]!r} must be 3 digits"


def fps_id_error(value: str) -> str | None:
    """FPS ID: 7 to 9 digits whose last digit is a Luhn check digit (Baygate's choice)."""
    if not _FPS_ID_RE.fullmatch(value):
        return f"FPS ID {value[:40]!r} must be 7 to 9 digits"
    if not luhn.is_valid(value):
        return f"FPS ID {value} has a wrong check digit (Luhn)"
    return None


def fps_id_with_check_digit(body: str) -> str:
    """Append the check digit to 6 to 8 digits: how test data and samples make FPS IDs."""
    return body + luhn.calc_check_digit(body)


_HKID_VALUES = {c: ord(c) - ord("A") + 10 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"} | {" ": 36}


def hkid_check_char(letters: str, digits: str) -> str:
    """HKID check character: weights 9..2 over (space-padded) letters and digits, mod 11."""
    first, second = (" ", letters) if len(letters) == 1 else (letters[0], letters[1])
    total = 9 * _HKID_VALUES[first] + 8 * _HKID_VALUES[second]
    for weight, d in zip((7, 6, 5, 4, 3, 2), digits, strict=True):
        total += weight * (ord(d) - 48)
    check = -total % 11
    return "A" if check == 10 else str(check)


def hkid_error(value: str) -> str | None:
    """HKID without brackets, e.g. A1234563 for A123456(3)."""
    m = _HKID_RE.fullmatch(value)
    if m is None:
        return "HKID must be 1 or 2 letters, 6 digits and a check character, without brackets"
    if hkid_check_char(m.group(1), m.group(2)) != m.group(3):
        return "HKID has a wrong check character"
    return None


def account_error(value: str) -> str | None:
    if _ACCOUNT_RE.fullmatch(value):
        return None
    return "Hong Kong account number must be 6 to 17 digits"
