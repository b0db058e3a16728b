"""Currency conversion through the FX provider: rate table, quotes, exact rounding.

A cross-currency transfer is two legs, payer -> FX provider in the source currency and FX
provider -> payee in the target currency. The target amount is `source * rate` rounded half
up to the target's minor unit (Decimal, never float). A quote locks the client rate (mid rate
less the spread) for a limited time, so the sender knows the amount the payee gets; a request
naming an unknown or expired quote, or amounts that do not match it, is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from clearing.money import Money, exponent
from clearing.ports import Leg, Quote
from clearing.reasons import Reason, Rejection

RATE_PLACES = 8  # client rates are quantized to 8 decimal places
SPREAD_BPS_MAX = 2_000
QUOTE_TTL_S_DEFAULT = 60
QUOTE_TTL_S_MAX = 3_600
FX_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("HKD", "CNY"),
        ("CNY", "HKD"),
        ("MOP", "CNY"),
        ("CNY", "MOP"),
        ("MOP", "HKD"),
        ("HKD", "MOP"),
    }
)
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)
_FX_PATH = "CdtTrfTxInf/XchgRate"


@dataclass(frozen=True, slots=True)
class Rate:
    """One row of the rate table: the mid rate of a currency pair and the spread charged."""

    source: str
    target: str
    mid: Decimal
    spread_bps: int

    def __post_init__(self) -> None:
        if (self.source, self.target) not in FX_PAIRS:
            raise ValueError(f"{self.source}->{self.target} is not a supported currency pair")
        if not (self.mid.is_finite() and self.mid > 0):
            raise ValueError(f"mid rate must be a positive number, got {self.mid}")
        if not 0 <= self.spread_bps <= SPREAD_BPS_MAX:
            raise ValueError(f"spread_bps must be in [0, {SPREAD_BPS_MAX}], got {self.spread_bps}")

    @property
    def client_rate(self) -> Decimal:
        """Mid rate less the spread: the payee gets slightly less than at mid."""
        with localcontext() as ctx:
            ctx.prec = 40
            raw = self.mid * (Decimal(10_000 - self.spread_bps) / Decimal(10_000))
            return raw.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP)


# Illustrative rates so that a fresh installation can quote; operators replace them.
DEFAULT_RATES: tuple[Rate, ...] = (
    Rate("HKD", "CNY", Decimal("0.9200"), 30),
    Rate("CNY", "HKD", Decimal("1.0870"), 30),
    Rate("MOP", "CNY", Decimal("0.8930"), 30),
    Rate("CNY", "MOP", Decimal("1.1200"), 30),
    Rate("MOP", "HKD", Decimal("0.9709"), 30),
    Rate("HKD", "MOP", Decimal("1.0300"), 30),
)


def convert(amount: Money, rate: Decimal, target: str) -> Money:
    """`amount * rate` in `target`, rounded half up to the target's minor unit."""
    with localcontext() as ctx:
        ctx.prec = 50
        value = amount.to_decimal() * rate
        quantum = Decimal(1).scaleb(-exponent(target))
        return Money.from_decimal(value.quantize(quantum, rounding=ROUND_HALF_UP), target)


def make_quote(
    quote_id: str, rate: Rate, fx_provider: str, now: datetime, ttl_s: int = QUOTE_TTL_S_DEFAULT
) -> Quote:
    if not 1 <= ttl_s <= QUOTE_TTL_S_MAX:
        raise ValueError(f"ttl_s must be in [1, {QUOTE_TTL_S_MAX}], got {ttl_s}")
    return Quote(
        id=quote_id,
        source_currency=rate.source,
        target_currency=rate.target,
        rate=rate.client_rate,
        mid_rate=rate.mid,
        spread_bps=rate.spread_bps,
        fx_provider=fx_provider,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )


def check_fx(
    legs: Sequence[Leg], quote_id: str | None, quote: Quote | None, now: datetime
) -> Rejection | None:
    """Check a two-leg request against its quote; None when it may proceed."""
    src, dst = legs
    if quote_id is None:
        return Rejection(Reason.NARR, "a currency conversion needs a quote id", _FX_PATH)
    if quote is None:
        return Rejection(Reason.NARR, f"unknown quote {quote_id}", _FX_PATH)
    if now >= quote.expires_at:
        return Rejection(
            Reason.NARR, f"quote {quote_id} expired at {quote.expires_at.isoformat()}", _FX_PATH
        )
    pair = (src.amount.currency, dst.amount.currency)
    if pair != (quote.source_currency, quote.target_currency):
        return Rejection(
            Reason.NARR,
            f"quote {quote_id} is for {quote.source_currency}->{quote.target_currency},"
            f" not {pair[0]}->{pair[1]}",
            _FX_PATH,
        )
    if src.payee != quote.fx_provider or dst.payer != quote.fx_provider:
        return Rejection(
            Reason.AG01, f"both legs must go through FX provider {quote.fx_provider}", _FX_PATH
        )
    expected = convert(src.amount, quote.rate, quote.target_currency)
    if dst.amount != expected:
        return Rejection(
            Reason.AM12,
            f"converted amount {dst.amount} does not match {expected} at quote rate {quote.rate}",
            _FX_PATH,
        )
    return None
