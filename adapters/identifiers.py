"""Identifier checks shared by every scheme, dispatching to each scheme's own rules.

Every check returns None when the value is valid, else a short message naming what is wrong
(no exceptions: decoding a 1,000-transaction message calls these thousands of times).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from adapters.cn_ibps import identifiers as cn
from adapters.hk_fps import identifiers as hk
from adapters.mo_fps import identifiers as mo
from clearing.model import PartyIdType, ProxyType

Check = Callable[[str], "str | None"]

# Clearing system -> (member id check, account number check, scheme id).
CLEARING_SYSTEMS: dict[str, tuple[Check, Check, str]] = {
    hk.CLEARING_SYSTEM: (hk.member_id_error, hk.account_error, "hk-fps"),
    cn.CLEARING_SYSTEM: (cn.member_id_error, cn.account_error, "cn-ibps"),
    mo.CLEARING_SYSTEM: (mo.member_id_error, mo.account_error, "mo-fps"),
}

_MOBILE_RE = re.compile(r"^\+(?:852-[4-9]\d{7}|86-1[3-9]\d{9}|853-6\d{7})$", re.ASCII)
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
EMAIL_LENGTH_MAX = 254
_OTHER_ID_RE = re.compile(r"^\S(?:.{0,33}\S)?$", re.ASCII)


def mobile_error(value: str) -> str | None:
    """ISO 20022 form: +852-91234567, +86-13800138000, +853-66123456."""
    if _MOBILE_RE.fullmatch(value):
        return None
    return "mobile number must be +852-XXXXXXXX, +86-1XXXXXXXXXX or +853-6XXXXXXX"


def email_error(value: str) -> str | None:
    if len(value) <= EMAIL_LENGTH_MAX and _EMAIL_RE.fullmatch(value):
        return None
    return "e-mail address is not valid"


PROXY_CHECKS: dict[ProxyType, Check] = {
    ProxyType.MOBILE: mobile_error,
    ProxyType.EMAIL: email_error,
    ProxyType.FPS_ID: hk.fps_id_error,
}


PROXY_TYPES = {t.value: t for t in ProxyType}
PARTY_ID_TYPES = {t.value: t for t in PartyIdType}


def proxy_error(type_code: str, value: str) -> str | None:
    kind = PROXY_TYPES.get(type_code)
    if kind is None:
        return f"proxy type {type_code[:8]!r} is not one of MOBN, EMAL, SHID"
    return PROXY_CHECKS[kind](value)


def _other_id_error(value: str) -> str | None:
    return None if _OTHER_ID_RE.fullmatch(value) else "identification must be 1 to 35 characters"


PARTY_ID_CHECKS: dict[PartyIdType, Check] = {
    PartyIdType.HKID: hk.hkid_error,
    PartyIdType.CN_RIC: cn.ric_error,
    PartyIdType.CN_USCC: cn.uscc_error,
    PartyIdType.MO_BIR: mo.bir_error,
    PartyIdType.OTHER: _other_id_error,
}

ORGANISATION_ID_TYPES = frozenset({PartyIdType.CN_USCC})


def party_id_error(type_code: str, value: str) -> str | None:
    kind = PARTY_ID_TYPES.get(type_code)
    if kind is None:
        known = ", ".join(PARTY_ID_TYPES)
        return f"identification scheme {type_code[:12]!r} is not one of {known}"
    return PARTY_ID_CHECKS[kind](value)


def member_id_error(clearing_system: str, value: str) -> str | None:
    entry = CLEARING_SYSTEMS.get(clearing_system)
    if entry is None:
        return f"clearing system {clearing_system[:12]!r} is not served (HKNCC, CNAPS, MOFPS)"
    return entry[0](value)


def account_error(clearing_system: str | None, value: str) -> str | None:
    """Account numbers are checked by the rules of the agent that holds them."""
    entry = CLEARING_SYSTEMS.get(clearing_system) if clearing_system else None
    if entry is None:
        return None if 1 <= len(value) <= 34 else "account number must be 1 to 34 characters"
    return entry[1](value)


def scheme_of(clearing_system: str) -> str | None:
    entry = CLEARING_SYSTEMS.get(clearing_system)
    return entry[2] if entry else None
