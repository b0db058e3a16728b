"""Corridor rules: limits exactly at and one minor unit over, local day and year boundaries,
service hours, identity, currencies, counting in the limit currency, and usage given back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from clearing.corridors import (
    DEFAULT_RULES,
    CorridorRule,
    CorridorRules,
    identity_hash,
    rule_from_dict,
)
from clearing.engine import MemoryEngine
from clearing.fx import Rate, convert
from clearing.money import Money
from clearing.ports import Leg, ReserveDecision, ReserveRequest
from clearing.reasons import Reason

HKT = timedelta(hours=8)  # Hong Kong, Beijing and Macau are UTC+8 all year


def hk(y: int, mo: int, d: int, h: int = 12, mi: int = 0, s: int = 0) -> datetime:
    """A local time in Hong Kong/Beijing/Macau as an aware UTC datetime."""
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC) - HKT


class World:
    def __init__(self, now: datetime, rules: CorridorRules = DEFAULT_RULES) -> None:
        self.now = now
        self.n = 0
        self.eng = MemoryEngine(lambda: self.now, identity_key=b"key", rules=rules)
        for p in ("hk1", "hk2", "cn1", "cn2", "mo1", "mo2"):
            self.eng.add_participant(p)
        self.eng.add_participant("fx", role="fx_provider")
        for p in ("hk1", "cn1", "mo1", "fx"):
            for c in ("HKD", "CNY", "MOP"):
                self.eng.set_limits(p, c, 10**12, 10**12)
        self.eng.set_rate(Rate("HKD", "CNY", Decimal("0.9"), 0))

    def send(
        self, src: str, dst: str, minor: int, ccy: str, identity: str | None = "A123456(7)",
        to_ccy: str | None = None, payer: str | None = None,
    ) -> ReserveDecision:  # fmt: skip
        self.n += 1
        payer = payer or {"hk-fps": "hk1", "cn-ibps": "cn1", "mo-fps": "mo1"}[src]
        payee = {"hk-fps": "hk2", "cn-ibps": "cn2", "mo-fps": "mo2"}[dst]
        amount = Money(minor, ccy)
        quote = None
        if to_ccy and to_ccy != ccy:
            q = self.eng.create_quote(ccy, to_ccy, ttl_s=600)
            quote = q.id
            legs: tuple[Leg, ...] = (
                Leg(payer, "fx", amount),
                Leg("fx", payee, convert(amount, q.rate, to_ccy)),
            )
        else:
            legs = (Leg(payer, payee, amount),)
        req = ReserveRequest(
            f"t{self.n}", legs, src, dst, self.now + timedelta(seconds=30), identity, quote
        )
        (d,) = self.eng.reserve_batch([req])
        return d

    def north(self, minor: int, identity: str | None = "A123456(7)") -> ReserveDecision:
        return self.send("hk-fps", "cn-ibps", minor, "HKD", identity, to_ccy="CNY")


def _rejected(d: ReserveDecision, code: Reason, *words: str) -> None:
    assert not d.ok and d.rejection is not None, d
    assert d.rejection.code is code, d.rejection
    for w in words:
        assert w in d.rejection.message, d.rejection.message


def test_northbound_daily_limit_exactly_at_and_one_minor_unit_over() -> None:
    w = World(hk(2025, 7, 1, 10))
    assert w.north(600_000).ok
    assert w.north(400_000).ok  # exactly HKD 10,000.00 in the day
    _rejected(w.north(1), Reason.AM02, "payment-connect-northbound", "daily", "10000.00 HKD")


def test_daily_counter_resets_at_local_midnight_not_utc_midnight() -> None:
    w = World(hk(2025, 7, 1, 23, 59, 59))
    assert w.north(1_000_000).ok
    w.now = hk(2025, 7, 2, 0, 0, 0)  # 16:00 UTC: a new day in Hong Kong
    assert w.north(1_000_000).ok
    w.now = hk(2025, 7, 2, 8, 0, 0)  # 00:00 UTC: still the same Hong Kong day
    _rejected(w.north(1), Reason.AM02, "daily")


def test_yearly_limit_and_the_local_new_year() -> None:
    w = World(hk(2025, 12, 11, 9))
    for _ in range(20):  # 20 days at the daily maximum: HKD 200,000.00 in 2025
        assert w.north(1_000_000).ok
        w.now += timedelta(days=1)
    w.now = hk(2025, 12, 31, 23, 59, 59)
    _rejected(w.north(1), Reason.AM02, "yearly", "200000.00 HKD")
    w.now = hk(2026, 1, 1, 0, 0, 0)
    assert w.north(1_000_000).ok


def test_counters_are_per_debtor_and_ignore_spacing_and_case() -> None:
    w = World(hk(2025, 7, 1))
    assert w.north(1_000_000, "A123456(7)").ok
    _rejected(w.north(1, " a123456(7) "), Reason.AM02)
    assert w.north(1_000_000, "B7654321").ok
    assert identity_hash(b"key", "A123456(7)") == identity_hash(b"key", "a 123456(7)")
    assert identity_hash(b"key", "A123456(7)") != identity_hash(b"other", "A123456(7)")
    assert "A123456" not in repr(w.eng.usage)  # only the keyed hash is kept


def test_aborted_and_expired_transfers_give_their_usage_back() -> None:
    w = World(hk(2025, 7, 1))
    d = w.north(1_000_000)
    assert d.ok
    _rejected(w.north(1), Reason.AM02)
    w.eng.abort(d.transfer_id, "AC01")
    d2 = w.north(1_000_000)
    assert d2.ok
    w.now += timedelta(seconds=31)
    assert w.eng.expire_due() == [d2.transfer_id]
    assert w.north(1_000_000).ok


def test_southbound_service_hours_in_beijing_time() -> None:
    w = World(hk(2025, 7, 1, 6, 59, 59))
    _rejected(w.send("cn-ibps", "hk-fps", 100, "CNY"), Reason.AG01, "service hours", "07:00-23:00")
    for at in (hk(2025, 7, 1, 7, 0, 0), hk(2025, 7, 1, 22, 59, 59)):
        w.now = at
        assert w.send("cn-ibps", "hk-fps", 100, "CNY").ok
    w.now = hk(2025, 7, 1, 23, 0, 0)
    _rejected(w.send("cn-ibps", "hk-fps", 100, "CNY"), Reason.AG01, "payment-connect-southbound")


def test_macau_fps_daily_limit_counts_hkd_at_the_counting_rate() -> None:
    w = World(hk(2025, 7, 1))
    assert w.send("mo-fps", "mo-fps", 1_999_897, "MOP").ok
    assert w.send("mo-fps", "mo-fps", 100, "HKD").ok  # HKD 1.00 counts as MOP 1.03
    _rejected(w.send("mo-fps", "mo-fps", 1, "MOP"), Reason.AM02, "macau-fps", "20000.00 MOP")


def test_macau_limit_is_shared_by_every_corridor_out_of_macau() -> None:
    w = World(hk(2025, 7, 1))
    assert w.send("mo-fps", "mo-fps", 1_500_000, "MOP").ok
    w.eng.set_rate(Rate("MOP", "HKD", Decimal("0.97"), 0))
    _rejected(w.send("mo-fps", "hk-fps", 500_001, "MOP", to_ccy="HKD"), Reason.AM02, "macau-to-hk")
    assert w.send("mo-fps", "hk-fps", 500_000, "MOP", to_ccy="HKD").ok


def test_identity_currency_and_closed_corridor_violations() -> None:
    w = World(hk(2025, 7, 1))
    _rejected(
        w.north(100, identity=None), Reason.RR04, "payment-connect-northbound", "identification"
    )
    _rejected(w.send("hk-fps", "cn-ibps", 100, "HKD"), Reason.AG01, "HKD->HKD not allowed")
    assert w.send("hk-fps", "hk-fps", 100, "HKD", identity=None).ok  # domestic: no rule
    only_north = CorridorRules(r for r in DEFAULT_RULES if r.name == "payment-connect-northbound")
    w2 = World(hk(2025, 7, 1), rules=only_north)
    _rejected(w2.send("cn-ibps", "hk-fps", 100, "CNY"), Reason.AG01, "no corridor")


def test_northbound_rmb_account_is_counted_in_hkd() -> None:
    w = World(hk(2025, 7, 1))
    assert w.send("hk-fps", "cn-ibps", 919_962, "CNY").ok  # counted as HKD 9,999.99
    assert w.north(1).ok
    _rejected(w.north(1), Reason.AM02)


def test_rules_are_validated_when_loaded_from_data() -> None:
    base = {
        "name": "x",
        "source_scheme": "hk-fps",
        "destination_scheme": "mo-fps",
        "source_currencies": ["HKD", "MOP"],
        "destination_currencies": ["MOP"],
    }
    assert rule_from_dict(base).counts_usage is False
    with pytest.raises(ValueError, match="counting rate"):
        rule_from_dict({**base, "limit_currency": "HKD", "daily_max": "100.00"})
    with pytest.raises(ValueError, match="unknown time zone"):
        rule_from_dict({**base, "tz": "Mars/Olympus"})
    with pytest.raises(ValueError, match="two rules"):
        CorridorRules([rule_from_dict(base), rule_from_dict({**base, "name": "y"})])
    overnight = CorridorRule(
        "n", "hk-fps", "mo-fps", frozenset({"HKD"}), frozenset({"MOP"}), tz="Asia/Macau",
        service_start=datetime(2000, 1, 1, 22).time(), service_end=datetime(2000, 1, 1, 6).time(),
    )  # fmt: skip
    assert overnight.in_service(hk(2025, 7, 1, 23)) and overnight.in_service(hk(2025, 7, 1, 5))
    assert not overnight.in_service(hk(2025, 7, 1, 6)) and not overnight.in_service(
        hk(2025, 7, 1, 12)
    )


def test_per_transaction_limit_exactly_at_and_one_minor_unit_over() -> None:
    rule = rule_from_dict(
        {
            "name": "capped",
            "source_scheme": "hk-fps",
            "destination_scheme": "mo-fps",
            "source_currencies": ["HKD"],
            "destination_currencies": ["HKD"],
            "limit_currency": "HKD",
            "per_tx_max": "5000.00",
        }
    )
    w = World(hk(2025, 7, 1), rules=CorridorRules([rule]))
    assert w.send("hk-fps", "mo-fps", 500_000, "HKD", identity="X1").ok
    assert w.send("hk-fps", "mo-fps", 500_000, "HKD", identity="X1").ok  # no daily limit here
    _rejected(
        w.send("hk-fps", "mo-fps", 500_001, "HKD", identity="X1"),
        Reason.AM02, "capped", "per-transaction", "5000.00 HKD",
    )  # fmt: skip
