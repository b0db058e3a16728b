"""A small, slow, obvious reference model of the clearing engine, in plain dicts.

Written from the rules in docs/clearing.md, independently of the engine's modules (it does
not import clearing.reserve, clearing.effects, clearing.netting or clearing.settlement), so
that the property tests compare two separate implementations of the same rules. It covers
the subset the tests drive: domestic single-leg transfers and HKD->CNY conversions through
one FX provider under a northbound-style corridor rule with small limits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

HK = ZoneInfo("Asia/Hong_Kong")
Leg = tuple[str, str, str, int]  # (payer, payee, currency, amount)
# (id, legs, debtor identity, quote expiry, reservation expiry)
RefRequest = tuple[str, list[Leg], str | None, datetime | None, datetime]


@dataclass
class RefTransfer:
    legs: list[Leg]
    expires_at: datetime
    state: str = "RESERVED"
    window: int | None = None
    usage: list[tuple[tuple[str, str], int]] = field(default_factory=list)


@dataclass
class RefSettlement:
    state: str
    windows: list[int]
    lines: dict[tuple[str, str], int]  # (participant, currency) -> credits minus debits
    confirmed: dict[tuple[str, str], str] = field(default_factory=dict)


class RefModel:
    def __init__(self, daily_max: int, yearly_max: int) -> None:
        self.daily_max = daily_max
        self.yearly_max = yearly_max
        self.caps: dict[tuple[str, str], tuple[int, int]] = {}
        self.net: dict[tuple[str, str], int] = defaultdict(int)
        self.reserved: dict[tuple[str, str], int] = defaultdict(int)
        self.transfers: dict[str, RefTransfer] = {}
        self.usage: dict[tuple[str, str], int] = defaultdict(int)
        self.window = 1
        self.window_state: dict[int, str] = {1: "OPEN"}
        self.totals: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.settlements: dict[int, RefSettlement] = {}

    def cap(self, key: tuple[str, str]) -> int:
        ndc, cover = self.caps.get(key, (0, 0))
        return min(ndc, cover)

    def reserve(self, requests: list[RefRequest], now: datetime) -> list[tuple[bool, str | None]]:
        """Decide in order; returns (accepted, reason code) per request."""
        out: list[tuple[bool, str | None]] = []
        seen: set[str] = set()
        for tid, legs, identity, quote_expiry, expires_at in requests:
            code = self._check(tid, legs, identity, quote_expiry, seen, now)
            seen.add(tid)
            if code is not None:
                out.append((False, code))
                continue
            usage: list[tuple[tuple[str, str], int]] = []
            if len(legs) == 2:
                assert identity is not None  # checked above
                d = now.astimezone(HK).date()
                amt = legs[0][3]
                usage = [((identity, f"D{d}"), amt), ((identity, f"Y{d.year}"), amt)]
                for key, a in usage:
                    self.usage[key] += a
            for payer, _, ccy, amt in legs:
                self.reserved[(payer, ccy)] += amt
            self.transfers[tid] = RefTransfer(list(legs), expires_at, usage=usage)
            out.append((True, None))
        return out

    def _check(
        self, tid: str, legs: list[Leg], identity: str | None, quote_expiry: datetime | None,
        seen: set[str], now: datetime,
    ) -> str | None:  # fmt: skip
        if len(legs) == 2 and identity is None:
            return "RR04"  # corridor checks that need no state come first
        if tid in self.transfers or tid in seen:
            return "AM05"
        if len(legs) == 2:
            assert identity is not None
            d = now.astimezone(HK).date()
            amt = legs[0][3]
            if self.usage[(identity, f"D{d}")] + amt > self.daily_max:
                return "AM02"
            if self.usage[(identity, f"Y{d.year}")] + amt > self.yearly_max:
                return "AM02"
            if quote_expiry is None or now >= quote_expiry:
                return "NARR"
        for payer, _, ccy, amt in legs:
            key = (payer, ccy)
            if self.net[key] + self.reserved[key] + amt > self.cap(key):
                return "AM04"
        return None

    def end(self, tid: str, event: str, now: datetime) -> tuple[str | None, bool]:
        t = self.transfers.get(tid)
        if t is None:
            return None, False
        if t.state != "RESERVED":
            return t.state, False
        expired = now >= t.expires_at
        if event == "expire" and not expired:
            return t.state, False
        if expired:
            new = "EXPIRED"
        else:
            new = "COMMITTED" if event == "commit" else "ABORTED"
        for payer, payee, ccy, amt in t.legs:
            self.reserved[(payer, ccy)] -= amt
            if new == "COMMITTED":
                self.net[(payer, ccy)] += amt
                self.net[(payee, ccy)] -= amt
                self.totals[(self.window, payer, ccy)][0] += amt
                self.totals[(self.window, payee, ccy)][1] += amt
        if new == "COMMITTED":
            t.window = self.window
        else:
            for key, a in t.usage:
                self.usage[key] -= a
        t.state = new
        return new, True

    def expire_due(self, now: datetime) -> set[str]:
        due = [
            i for i, t in self.transfers.items() if t.state == "RESERVED" and t.expires_at <= now
        ]
        for i in due:
            self.end(i, "expire", now)
        return set(due)

    def close(self) -> tuple[int, int | None]:
        old = self.window
        self.window_state[old] = "CLOSED"
        self.window += 1
        self.window_state[self.window] = "OPEN"
        included = sorted(w for w, s in self.window_state.items() if w == old or s == "ABORTED")
        lines: dict[tuple[str, str], int] = defaultdict(int)
        for (w, p, c), (d, cr) in self.totals.items():
            if w in included:
                lines[(p, c)] += cr - d
        if not any(True for (w, _, _) in self.totals if w in included):
            self.window_state[old] = "SETTLED"
            return old, None
        sid = len(self.settlements) + 1
        for w in included:
            self.window_state[w] = "CLOSED"
        self.settlements[sid] = RefSettlement("PENDING_SETTLEMENT", included, dict(lines))
        if all(v == 0 for v in lines.values()):
            self._settled(sid)
        return old, sid

    def confirm(self, sid: int, key: tuple[str, str], ref: str) -> str:
        s = self.settlements[sid]
        assert s.state == "PENDING_SETTLEMENT" and s.lines[key] != 0 and key not in s.confirmed
        s.confirmed[key] = ref
        if all(v == 0 or k in s.confirmed for k, v in s.lines.items()):
            self._settled(sid)
        return s.state

    def _settled(self, sid: int) -> None:
        s = self.settlements[sid]
        s.state = "SETTLED"
        for key, v in s.lines.items():
            self.net[key] += v
        for w in s.windows:
            self.window_state[w] = "SETTLED"

    def abort_settlement(self, sid: int) -> str:
        s = self.settlements[sid]
        if s.state == "PENDING_SETTLEMENT":
            s.state = "ABORTED"
            for w in s.windows:
                self.window_state[w] = "ABORTED"
        return s.state
