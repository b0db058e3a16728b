"""Corridor rules per (source scheme, destination scheme), as data.

A corridor says which currencies may be sent and received, when it is open (in its own time
zone), and how much one debtor may send per transaction, per local day and per local year.
Debtors are counted by a keyed hash (HMAC-SHA256) of their ID number or account, so the
usage counters never hold an identity in clear and cannot be reversed without the key.

Limits of a rule are in its `limit_currency`. A leg in another allowed currency is counted at
the rule's `counting_rates` (configuration, rounded half up): a modelling choice, since the
public rules state the limits in one currency only. Rules sharing a `limit_group` share the
debtor's counters (Macau FPS counts every outgoing transfer against one daily limit).

A same-scheme pair without a rule is open with no limits; a cross-scheme pair without a rule is
closed (AG01). Violations: AG01 (currency or time not allowed), RR04 (identity missing where
the regulation counts per person), AM02 (amount limits), each naming the rule.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clearing.money import Money
from clearing.reasons import Reason, Rejection

_PATH_AMT = "CdtTrfTxInf/IntrBkSttlmAmt"
_PATH_DBTR = "CdtTrfTxInf/Dbtr/Id"
IDENTITY_CHARS_MAX = 128


def _zone(tz: str, owner: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{owner}: unknown time zone {tz!r}") from None


@dataclass(frozen=True, slots=True)
class CorridorRule:
    name: str
    source_scheme: str
    destination_scheme: str
    source_currencies: frozenset[str]
    destination_currencies: frozenset[str]
    tz: str = "UTC"
    service_start: time | None = None  # local time; None with service_end None = 24 hours
    service_end: time | None = None
    identity_required: bool = False
    limit_currency: str | None = None
    per_tx_max_minor: int | None = None
    daily_max_minor: int | None = None
    yearly_max_minor: int | None = None
    counting_rates: Mapping[str, Decimal] = field(default_factory=dict)
    limit_group: str | None = None

    def __post_init__(self) -> None:
        _zone(self.tz, self.name)
        limits = (self.per_tx_max_minor, self.daily_max_minor, self.yearly_max_minor)
        if any(v is not None for v in limits):
            if self.limit_currency is None:
                raise ValueError(f"{self.name}: limits need a limit_currency")
            if any(v is not None and v <= 0 for v in limits):
                raise ValueError(f"{self.name}: limits must be positive")
            missing = {c for c in self.source_currencies if c != self.limit_currency} - set(
                self.counting_rates
            )
            if missing:
                raise ValueError(f"{self.name}: no counting rate for {sorted(missing)}")
        if (self.service_start is None) != (self.service_end is None):
            raise ValueError(f"{self.name}: give both service_start and service_end, or neither")

    @property
    def group(self) -> str:
        return self.limit_group or self.name

    @property
    def counts_usage(self) -> bool:
        return self.daily_max_minor is not None or self.yearly_max_minor is not None

    def counted(self, amount: Money) -> int:
        """The amount in the limit currency's minor units, as counted against the limits."""
        if amount.currency == self.limit_currency:
            return amount.minor
        rate = self.counting_rates[amount.currency]
        return int((Decimal(amount.minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def local(self, now: datetime) -> datetime:
        assert now.tzinfo is not None, "the clock must give aware datetimes"
        return now.astimezone(ZoneInfo(self.tz))

    def periods(self, now: datetime) -> tuple[str, str]:
        """The debtor's counting periods at `now`: local day and local year."""
        d = self.local(now).date()
        return f"D{d.isoformat()}", f"Y{d.year}"

    def in_service(self, now: datetime) -> bool:
        if self.service_start is None or self.service_end is None:
            return True
        t = self.local(now).time()
        if self.service_start <= self.service_end:
            return self.service_start <= t < self.service_end
        return t >= self.service_start or t < self.service_end  # window over midnight


def _money(minor: int | None, currency: str | None) -> str:
    return str(Money(minor, currency)) if minor is not None and currency else "-"


class CorridorRules:
    """Rules by (source scheme, destination scheme)."""

    def __init__(self, rules: Iterable[CorridorRule]) -> None:
        self._by_pair: dict[tuple[str, str], CorridorRule] = {}
        for r in rules:
            key = (r.source_scheme, r.destination_scheme)
            if key in self._by_pair:
                raise ValueError(f"two rules for corridor {key[0]} -> {key[1]}")
            self._by_pair[key] = r

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_pair.values())

    def lookup(self, source: str, destination: str) -> CorridorRule | None:
        return self._by_pair.get((source, destination))

    def closed(self, source: str, destination: str) -> bool:
        return source != destination and (source, destination) not in self._by_pair


def identity_hash(key: bytes, raw: str) -> str:
    """Keyed hash of a debtor's ID number or account; normalized so spacing and case do not
    create a second identity."""
    norm = "".join(raw.split()).upper()
    return hmac.new(key, norm.encode("utf-8"), hashlib.sha256).hexdigest()


def check_static(
    rule: CorridorRule,
    legs_currencies: tuple[str, str],
    amount: Money,
    has_identity: bool,
    now: datetime,
) -> Rejection | None:
    """Everything that does not depend on the debtor's past usage."""
    src_ccy, dst_ccy = legs_currencies
    if src_ccy not in rule.source_currencies or dst_ccy not in rule.destination_currencies:
        return Rejection(
            Reason.AG01,
            f"corridor {rule.name}: {src_ccy}->{dst_ccy} not allowed"
            f" (sends {'/'.join(sorted(rule.source_currencies))},"
            f" receives {'/'.join(sorted(rule.destination_currencies))})",
            _PATH_AMT,
        )
    if not rule.in_service(now):
        return Rejection(
            Reason.AG01,
            f"corridor {rule.name}: outside service hours {rule.service_start:%H:%M}-"
            f"{rule.service_end:%H:%M} {rule.tz}",
            "GrpHdr/CreDtTm",
        )
    if (rule.identity_required or rule.counts_usage) and not has_identity:
        return Rejection(
            Reason.RR04, f"corridor {rule.name}: debtor identification is required", _PATH_DBTR
        )
    if rule.per_tx_max_minor is not None and rule.counted(amount) > rule.per_tx_max_minor:
        return Rejection(
            Reason.AM02,
            f"corridor {rule.name}: {amount} is over the per-transaction limit"
            f" {_money(rule.per_tx_max_minor, rule.limit_currency)}",
            _PATH_AMT,
        )
    return None


def check_usage(
    rule: CorridorRule, counted: int, used_day: int, used_year: int
) -> Rejection | None:
    """Daily then yearly limit: reaching a limit exactly is allowed, one minor unit over is not."""
    for label, used, cap in (
        ("daily", used_day, rule.daily_max_minor),
        ("yearly", used_year, rule.yearly_max_minor),
    ):
        if cap is not None and used + counted > cap:
            return Rejection(
                Reason.AM02,
                f"corridor {rule.name}: {label} limit {_money(cap, rule.limit_currency)} per debtor"
                f" would be exceeded (used {_money(used, rule.limit_currency)},"
                f" this {_money(counted, rule.limit_currency)})",
                _PATH_AMT,
            )
    return None


def _t(text: str | None) -> time | None:
    return None if text is None else time.fromisoformat(text)


def _minor(text: str | None, currency: str | None) -> int | None:
    if text is None:
        return None
    if currency is None:
        raise ValueError("limits need a limit_currency")
    return Money.parse(text, currency, allow_zero=False).minor


def rule_from_dict(d: Mapping[str, Any]) -> CorridorRule:
    """Build a rule from configuration data (amounts as decimal strings, times as "HH:MM")."""
    ccy = d.get("limit_currency")
    return CorridorRule(
        name=d["name"],
        source_scheme=d["source_scheme"],
        destination_scheme=d["destination_scheme"],
        source_currencies=frozenset(d["source_currencies"]),
        destination_currencies=frozenset(d["destination_currencies"]),
        tz=d.get("tz", "UTC"),
        service_start=_t(d.get("service_start")),
        service_end=_t(d.get("service_end")),
        identity_required=bool(d.get("identity_required", False)),
        limit_currency=ccy,
        per_tx_max_minor=_minor(d.get("per_tx_max"), ccy),
        daily_max_minor=_minor(d.get("daily_max"), ccy),
        yearly_max_minor=_minor(d.get("yearly_max"), ccy),
        counting_rates={k: Decimal(str(v)) for k, v in d.get("counting_rates", {}).items()},
        limit_group=d.get("limit_group"),
    )


def rules_from_data(data: Sequence[Mapping[str, Any]]) -> CorridorRules:
    return CorridorRules(rule_from_dict(d) for d in data)


# Defaults. Verified public rules: Payment Connect northbound HKD 10,000 a day and HKD 200,000
# a year per person; southbound open 16 hours a day; Macau FPS MOP 20,000 a day. Assumed here:
# the southbound hours (07:00-23:00 Beijing time), the counting rates, and the Macau corridors
# to and from the other schemes (no live link is public; the Macau daily limit is applied to
# every transfer a Macau debtor sends).
DEFAULT_RULES_DATA: tuple[dict[str, Any], ...] = (
    {
        "name": "payment-connect-northbound",
        "source_scheme": "hk-fps",
        "destination_scheme": "cn-ibps",
        "source_currencies": ["HKD", "CNY"],
        "destination_currencies": ["CNY"],
        "tz": "Asia/Hong_Kong",
        "identity_required": True,
        "limit_currency": "HKD",
        "daily_max": "10000.00",
        "yearly_max": "200000.00",
        "counting_rates": {"CNY": "1.087"},
    },
    {
        "name": "payment-connect-southbound",
        "source_scheme": "cn-ibps",
        "destination_scheme": "hk-fps",
        "source_currencies": ["CNY"],
        "destination_currencies": ["HKD", "CNY"],
        "tz": "Asia/Shanghai",
        "service_start": "07:00",
        "service_end": "23:00",
        "identity_required": True,
    },
    *(
        {
            "name": name,
            "source_scheme": "mo-fps",
            "destination_scheme": dst,
            "source_currencies": ["MOP", "HKD"],
            "destination_currencies": recv,
            "tz": "Asia/Macau",
            "limit_currency": "MOP",
            "daily_max": "20000.00",
            "counting_rates": {"HKD": "1.03"},
            "limit_group": "macau-fps",
        }
        for name, dst, recv in (
            ("macau-fps", "mo-fps", ["MOP", "HKD"]),
            ("macau-to-hk", "hk-fps", ["HKD"]),
            ("macau-to-mainland", "cn-ibps", ["CNY"]),
        )
    ),
    {
        "name": "hk-to-macau",
        "source_scheme": "hk-fps",
        "destination_scheme": "mo-fps",
        "source_currencies": ["HKD"],
        "destination_currencies": ["HKD", "MOP"],
        "tz": "Asia/Hong_Kong",
    },
    {
        "name": "mainland-to-macau",
        "source_scheme": "cn-ibps",
        "destination_scheme": "mo-fps",
        "source_currencies": ["CNY"],
        "destination_currencies": ["MOP"],
        "tz": "Asia/Shanghai",
        "identity_required": True,
    },
)

DEFAULT_RULES = rules_from_data(DEFAULT_RULES_DATA)
