"""Money: integer minor units plus an ISO 4217 currency code. Never a float.

Decimal appears only at the edges: `Money.parse` turns a decimal string from a message
into minor units exactly (refusing more fraction digits than the currency has), and
`Money.format` turns minor units back into the canonical decimal string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents for the currencies Baygate clears.
CURRENCY_EXPONENTS: dict[str, int] = {"HKD": 2, "CNY": 2, "MOP": 2, "USD": 2}

# Amount columns are BIGINT; keep a margin so that sums of a few amounts still fit.
AMOUNT_MINOR_MAX = 10**15  # 10 trillion in a 2-decimal currency
_DECIMAL_RE = re.compile(r"^(?P<sign>-?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")
_DIGITS_MAX = 30


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly. `code` is the ISO 20022 reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError("AM03", f"currency {currency!r} is not supported") from None


@dataclass(frozen=True, slots=True, order=False)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError(f"Money.minor must be int, got {type(self.minor).__name__}")
        exponent(self.currency)
        if abs(self.minor) > AMOUNT_MINOR_MAX:
            raise MoneyError("AM12", f"amount {self.minor} minor units exceeds the maximum")

    @classmethod
    def parse(
        cls, text: str, currency: str, *, allow_negative: bool = False, allow_zero: bool = True
    ) -> Money:
        """Parse a decimal string ("1234.50") into exact minor units.

        Rejections carry ISO 20022 reason codes: AM03 unknown currency, AM12 invalid
        amount (syntax, too many decimals, too large), AM01 zero where not allowed,
        AM12 negative where not allowed.
        """
        exp = exponent(currency)
        s = text.strip() if isinstance(text, str) else ""
        if len(s) > _DIGITS_MAX:
            raise MoneyError("AM12", f"amount {s[:_DIGITS_MAX]!r}... is too long")
        m = _DECIMAL_RE.match(s)
        if m is None:
            raise MoneyError("AM12", f"amount {text!r} is not a decimal number")
        frac = m.group("frac") or ""
        if len(frac) > exp:
            stripped = frac.rstrip("0")
            if len(stripped) > exp:
                raise MoneyError(
                    "AM12", f"amount {s} has more than {exp} decimals allowed for {currency}"
                )
            frac = stripped
        minor = int(m.group("int")) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
        if m.group("sign"):
            minor = -minor
        if minor < 0 and not allow_negative:
            raise MoneyError("AM12", f"amount {s} must not be negative")
        if minor == 0 and not allow_zero:
            raise MoneyError("AM01", "amount must be greater than zero")
        if abs(minor) > AMOUNT_MINOR_MAX:
            raise MoneyError("AM12", f"amount {s} {currency} exceeds the maximum")
        return cls(minor, currency)

    @classmethod
    def from_decimal(cls, value: Decimal, currency: str) -> Money:
        """Exact conversion; the caller must have quantized (e.g. FX with ROUND_HALF_UP)."""
        exp = exponent(currency)
        try:
            scaled = value.scaleb(exp)
            if scaled != scaled.to_integral_value():
                raise MoneyError("AM12", f"{value} has more than {exp} decimals for {currency}")
            return cls(int(scaled), currency)
        except InvalidOperation:
            raise MoneyError("AM12", f"{value} is not a finite amount") from None

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def format(self) -> str:
        """Canonical decimal string with exactly the currency's number of decimals."""
        exp = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        q, r = divmod(abs(self.minor), 10**exp)
        return f"{sign}{q}.{r:0{exp}d}" if exp else f"{sign}{q}"

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"
