"""ISO 20022 external status reason codes used by Baygate, with their meaning.

Business rejections are data: a `Rejection(code, message, path)`, never an exception that
escapes to the caller as a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    AB05 = "AB05"  # timeout at the creditor agent
    AC01 = "AC01"  # incorrect account number
    AC04 = "AC04"  # closed account number
    AG01 = "AG01"  # transaction forbidden
    AM01 = "AM01"  # zero amount
    AM02 = "AM02"  # not allowed amount (above a limit)
    AM03 = "AM03"  # not allowed currency
    AM04 = "AM04"  # insufficient funds
    AM05 = "AM05"  # duplication
    AM12 = "AM12"  # invalid amount
    BE01 = "BE01"  # inconsistent with end customer (name mismatch)
    BE23 = "BE23"  # account proxy invalid / unknown
    DUPL = "DUPL"  # duplicate payment
    FF01 = "FF01"  # invalid file format
    RC10 = "RC10"  # invalid creditor agent member identifier
    RR04 = "RR04"  # regulatory reason
    NARR = "NARR"  # narrative: see additional information

    @property
    def meaning(self) -> str:
        return REASON_MEANINGS[self]


REASON_MEANINGS: dict[Reason, str] = {
    Reason.AB05: "Timeout at creditor agent: the receiving provider did not answer in time",
    Reason.AC01: "Incorrect account number",
    Reason.AC04: "Closed account number",
    Reason.AG01: "Transaction forbidden",
    Reason.AM01: "Zero amount",
    Reason.AM02: "Amount exceeds the allowed maximum",
    Reason.AM03: "Currency not allowed",
    Reason.AM04: "Insufficient funds (position would exceed its cap)",
    Reason.AM05: "Duplication",
    Reason.AM12: "Invalid amount",
    Reason.BE01: "Inconsistent with end customer",
    Reason.BE23: "Account proxy invalid or unknown",
    Reason.DUPL: "Duplicate payment",
    Reason.FF01: "Invalid file format",
    Reason.RC10: "Invalid creditor agent member identifier",
    Reason.RR04: "Regulatory reason",
    Reason.NARR: "Narrative reason",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A business rejection: reason code, human-readable message, and the field path."""

    code: Reason
    message: str
    path: str = ""

    def line(self) -> str:
        return f"{self.code} {self.path or '-'}: {self.message}"
