"""Checks shared by the encoders: a canonical transfer either fits the target or is refused.

`Out` collects TranslationError reasons for one transfer, with paths `<EndToEndId>/<field>`
in canonical field names (the mapping tables say where each lands in every scheme).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from adapters import xmlsafe
from adapters.base import TranslationError
from clearing.model import Transfer
from clearing.money import Money
from clearing.reasons import Reason, Rejection

_CODE_RE = re.compile(r"^[A-Z]{4}$", re.ASCII)


class Out:
    __slots__ = ("items", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self.items: list[Rejection] = []

    def add(self, code: Reason, field: str, message: str) -> None:
        self.items.append(
            Rejection(code, message, f"{self.label}/{field}" if self.label else field)
        )

    def text(
        self, value: str | None, field: str, length_max: int, *, required: bool = False
    ) -> str | None:
        """The escaped value, or None (absent or refused: refusal is recorded)."""
        if value is None:
            if required:
                self.add(Reason.FF01, field, "is required")
            return None
        if 0 < len(value) <= length_max and value == value.strip() and xmlsafe.xml_safe(value):
            return xmlsafe.text(value)
        if not value or value != value.strip():
            self.add(Reason.FF01, field, "must be non-empty without surrounding spaces")
        elif len(value) > length_max:
            self.add(
                Reason.FF01, field, f"is longer than the {length_max} characters the target carries"
            )
        else:
            self.add(Reason.FF01, field, "holds characters XML cannot carry")
        return None

    def piece(self, value: str, field: str, length_max: int) -> str | None:
        """A piece of a longer value (spaces at its edges are content): length and XML only."""
        if not value or len(value) > length_max or not xmlsafe.xml_safe(value):
            self.add(Reason.FF01, field, f"must be 1 to {length_max} characters XML can carry")
            return None
        return xmlsafe.text(value)

    def cut(self, value: str, field: str, length_max: int) -> str | None:
        """Documented rule for names: keep the first length_max characters."""
        value = value[:length_max].rstrip()
        return self.text(value, field, length_max, required=True)

    def raise_if_any(self) -> None:
        if self.items:
            raise TranslationError(self.items)


def settlement(t: Transfer, currencies: frozenset[str], scheme: str, out: Out) -> Money | None:
    """The amount the receiving provider gets: creditor_amount when set, else amount."""
    money = t.creditor_amount or t.amount
    field = "creditor_amount" if t.creditor_amount else "amount"
    if money.currency not in currencies:
        allowed = ", ".join(sorted(currencies))
        out.add(
            Reason.AM03,
            field,
            f"{scheme} carries {allowed}, not {money.currency} (no FX in translation)",
        )
        return None
    if money.minor <= 0:
        out.add(
            Reason.AM01 if money.minor == 0 else Reason.AM12,
            field,
            "amount must be greater than zero",
        )
        return None
    return money


def instructed(t: Transfer) -> Money | None:
    """InstdAmt: as given by the sender, else the debtor-side amount when a conversion applied."""
    if t.instructed_amount is not None:
        return t.instructed_amount
    if t.creditor_amount is not None and t.creditor_amount != t.amount:
        return t.amount
    return None


def iso_datetime(value: datetime, out: Out) -> str | None:
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        out.add(Reason.FF01, "created_at", "UTC offset must be whole minutes")
        return None
    return value.isoformat()


def code_element(value: str) -> str:
    """ISO external codes are 4 capital letters: those go in Cd, anything else in Prtry."""
    return "Cd" if _CODE_RE.fullmatch(value) else "Prtry"


def amount_attr(money: Money) -> str:
    return f' Ccy="{money.currency}"'
