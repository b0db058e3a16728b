"""Macau identifiers: member codes, resident identity card (BIR), account numbers.

All formats here are assumed (no public Macau FPS message guide was found); see
docs/schemes/mo-fps.md. Macau FPS IDs follow the same rule as Hong Kong's
(`adapters.hk_fps.identifiers.fps_id_error`).
"""

from __future__ import annotations

import re

CLEARING_SYSTEM = "MOFPS"

_MEMBER_RE = re.compile(
    r"^\d{3}$", re.ASCII
)  # assumed: 3-digit bank code, as Baygate's directory uses
_BIR_RE = re.compile(r"^[1578]\d{7}$", re.ASCII)  # 1234567(8) written without brackets
_ACCOUNT_RE = re.compile(r"^\d{6,20}$", re.ASCII)


def member_id_error(value: str) -> str | None:
    if _MEMBER_RE.fullmatch(value):
        return None
    return f"Macau member code {value[:40]!r} must be 3 digits"


def bir_error(value: str) -> str | None:
    """Format only: the BIR check-digit rule is not public, so it is not checked."""
    if _BIR_RE.fullmatch(value):
        return None
    return "Macau BIR number must be 8 digits starting with 1, 5, 7 or 8, without brackets"


def account_error(value: str) -> str | None:
    if _ACCOUNT_RE.fullmatch(value):
        return None
    return "Macau account number must be 6 to 20 digits"
