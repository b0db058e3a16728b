"""Positions under a net debit cap: the one rule that decides whether a leg may be reserved.

A participant's exposure in a currency is its net position (committed debits minus credits,
not yet settled) plus what is reserved for transfers in flight. A leg is reserved only if the
exposure plus the leg stays within the effective cap, the lower of the net debit cap and the
liquidity cover: the cap is a risk limit, the cover is collateral actually posted, and the
engine must never let a participant owe more than either.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearing.money import AMOUNT_MINOR_MAX, Money
from clearing.reasons import Reason, Rejection


@dataclass(slots=True)
class Position:
    """Mutable working copy of one (participant, currency) position inside a decision batch."""

    net: int = 0
    reserved: int = 0
    net_debit_cap: int = 0
    liquidity_cover: int = 0

    @property
    def effective_cap(self) -> int:
        return min(self.net_debit_cap, self.liquidity_cover)

    @property
    def exposure(self) -> int:
        return self.net + self.reserved

    def fits(self, amount: int) -> bool:
        return self.exposure + amount <= self.effective_cap


def cap_rejection(participant_id: str, pos: Position, amount: Money, path: str) -> Rejection:
    """AM04 naming the numbers, so an operator can see how far over the cap the leg was."""
    return Rejection(
        Reason.AM04,
        f"{participant_id} {amount.currency}: position {pos.net} + reserved {pos.reserved}"
        f" + {amount.minor} exceeds effective cap {pos.effective_cap} (minor units)",
        path,
    )


def check_limits(net_debit_cap: int, liquidity_cover: int) -> None:
    """Operator input check: caps are non-negative integers that fit the BIGINT columns."""
    for name, value in (("net_debit_cap", net_debit_cap), ("liquidity_cover", liquidity_cover)):
        if type(value) is not int or not 0 <= value <= AMOUNT_MINOR_MAX:
            raise ValueError(f"{name} must be an int in [0, {AMOUNT_MINOR_MAX}], got {value!r}")
