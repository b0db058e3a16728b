"""The day's traffic, planned in advance: which sender sends what to whom, and the bad cases.

`Planner` turns a seeded RNG into messages, in order, before any answer is known, so the same
seed at the same hours plans the same traffic. Everyday traffic uses only corridors the rules
(clearing.corridors) open at the time, in the currencies they take, far below their
per-person limits; each bad case is made to break exactly one rule. gateway.traffic sends
what is planned here and records the answers.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from clearing.corridors import DEFAULT_RULES, CorridorRules
from clearing.money import AMOUNT_MINOR_MAX, Money
from gateway import sim_messages as sm
from gateway.sim_messages import payees_from_directory

CASES = ("ok", "unknown_proxy", "over_corridor", "over_cap", "exact_duplicate", "id_reuse",
         "unknown_account")  # fmt: skip
DEFAULT_SHARES: dict[str, float] = {
    "unknown_proxy": 0.02, "over_corridor": 0.01, "over_cap": 0.005,
    "exact_duplicate": 0.01, "id_reuse": 0.01, "unknown_account": 0.02,
}  # fmt: skip


@dataclass(frozen=True)
class TrafficPlan:
    senders: tuple[str, ...] = ()  # default: every provider with a key
    shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    tx_per_msg_max: int = 1  # everyday messages carry 1..this many transfers
    cross_border_only: bool = True  # everyday payees sit in another scheme than the sender
    corridors: CorridorRules = DEFAULT_RULES  # the gateway's rules, to route everyday traffic
    seed: int = 0
    tag: str | None = None  # id prefix, unique per run; default from the start time
    resend_gap_s: float = 1.1
    # Everyday traffic from one sender in one currency stays below this share of its
    # effective cap (the smaller of net debit cap and liquidity cover), counting what it is
    # planned to pay and not what it receives, so that an everyday transfer is never refused
    # for liquidity. Once no sender has room left, traffic goes on unbounded. None: no bound
    # (the stressed day wants senders to run into their caps).
    cap_share_max: float | None = None
    acks_max: int = 2_000_000

    def __post_init__(self) -> None:
        unknown = set(self.shares) - set(CASES)
        if unknown:
            raise ValueError(f"unknown cases {sorted(unknown)}")
        if any(v < 0 for v in self.shares.values()) or sum(self.shares.values()) > 1:
            raise ValueError("shares must be non-negative and sum to at most 1")
        if not 1 <= self.tx_per_msg_max <= 1000:
            raise ValueError("tx_per_msg_max must lie in [1, 1000]")
        if self.cap_share_max is not None and not 0 < self.cap_share_max <= 1:
            raise ValueError("cap_share_max must lie in (0, 1]")


@dataclass
class Job:
    case: str
    sender: sm.Sender
    body: bytes
    e2e_ids: list[str]
    follow: Job | None = None  # sent after this one's answer (duplicate, id reuse)


class Planner:
    """Turns a seeded RNG into the day's messages, one `next_job()` at a time.

    `clock` (epoch seconds) stamps the messages (CreDtTm) and decides which corridors are in
    service; the run's id tag defaults to it too.
    """

    def __init__(
        self,
        plan: TrafficPlan,
        senders: list[sm.Sender],
        directory: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan, self.senders, self.clock = plan, senders, clock
        self.rules = plan.corridors
        self.rng = random.Random(plan.seed)
        self.payees: dict[str, list[sm.Payee]] = {}
        for p in payees_from_directory(directory, self.rng):
            self.payees.setdefault(p.scheme, []).append(p)
        self.tag = plan.tag or _base36(int(clock()))
        self.seq: Counter[str] = Counter()
        self.caps = _caps(directory)
        self.effective_caps = _caps(directory, min)
        self.planned_minor: Counter[tuple[str, str]] = Counter()  # everyday payments planned
        self.cases = ["ok", *plan.shares]
        self.weights = [1.0 - sum(plan.shares.values()), *plan.shares.values()]

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(int(self.clock()), tz=dt.UTC)

    def _next_seq(self, s: sm.Sender, n: int = 1) -> int:
        first = self.seq[s.id]
        self.seq[s.id] += n
        return first

    def _pool(self, s: sm.Sender, dst: str) -> list[sm.Payee]:
        return [p for p in self.payees.get(dst, ()) if p.participant_id != s.id]

    def _routes(
        self, now: dt.datetime, accept: Callable[[sm.Sender, str], bool]
    ) -> list[tuple[sm.Sender, str]]:
        """(sender, destination scheme) pairs open now, with payees, that `accept` likes."""
        return [
            (s, d)
            for s in self.senders
            for d in sm.destinations(s.scheme, self.rules, now, cross_border_only=self.plan.cross_border_only)
            if self._pool(s, d) and accept(s, d)
        ]  # fmt: skip

    def _message(
        self, case: str, s: sm.Sender, pairs: Sequence[tuple[sm.Payee, Money]], now: dt.datetime
    ) -> Job:
        seq = self._next_seq(s, len(pairs) + 1)
        msg_id = sm.message_id(s, self.tag, seq)
        transfers = [
            sm.make_transfer(s, payee, self.rng, msg_id=msg_id, created_at=now, amount=amount,
                             e2e=sm.end_to_end_id(s, self.tag, seq + 1 + i))
            for i, (payee, amount) in enumerate(pairs)
        ]  # fmt: skip
        body = sm.encode(s.scheme, transfers, msg_id, now)
        return Job(case, s, body, [t.end_to_end_id for t in transfers])

    def next_job(self) -> Job:
        rng, now = self.rng, self._now()
        case = rng.choices(self.cases, self.weights)[0]
        if case == "over_corridor":
            job = self._over_corridor(now)
            if job is not None:
                return job
            case = "ok"
        if case == "over_cap":
            job = self._over_cap(now)
            if job is not None:
                return job
            case = "ok"
        routes = self._routes(now, lambda s, d: bool(self._with_room(s, d)))
        if not routes:
            routes = self._routes(now, lambda s, d: True)
        if not routes:
            raise RuntimeError(
                f"no corridor open at {now.isoformat()} between the senders and payees"
            )
        s, dst = rng.choice(routes)
        ccy = sm.pick_currency(rng, self._with_room(s, dst) or sm.corridor_currencies(s.scheme, dst, self.rules))
        pool = self._pool(s, dst)
        if case == "unknown_proxy":
            payee = sm.unknown_proxy_payee(rng, rng.choice(pool))
            return self._message(case, s, [(payee, sm.everyday_amount(rng, ccy))], now)
        if case == "unknown_account":
            payee = sm.unknown_account_payee(rng, rng.choice(pool))
            return self._message(case, s, [(payee, sm.everyday_amount(rng, ccy))], now)
        n = rng.randint(1, self.plan.tx_per_msg_max) if case == "ok" else 1
        pairs = [(rng.choice(pool), sm.everyday_amount(rng, ccy)) for _ in range(n)]
        self.planned_minor[(s.id, ccy)] += sum(a.minor for _, a in pairs)
        job = self._message("ok", s, pairs, now)
        if case == "exact_duplicate":
            job.follow = replace(job, case=case, follow=None)
        elif case == "id_reuse":
            job.follow = self._reuse(s, job, pairs[0], now)
        return job

    def _with_room(self, s: sm.Sender, dst: str) -> list[str]:
        """The corridor's currencies, home first, in which `s` may still plan a message of
        everyday payments (all of them when the plan sets no bound)."""
        currencies = sm.corridor_currencies(s.scheme, dst, self.rules)
        share = self.plan.cap_share_max
        if share is None:
            return list(currencies)
        message_minor_max = self.plan.tx_per_msg_max * sm.EVERYDAY_MINOR_MAX
        return [
            c for c in currencies
            if self.planned_minor[(s.id, c)] + message_minor_max
            <= share * self.effective_caps.get((s.id, c), 0)
        ]  # fmt: skip

    def _over_corridor(self, now: dt.datetime) -> Job | None:
        """One transfer just over a corridor's daily (or per-transaction) limit per debtor."""
        routes = self._routes(now, lambda s, d: _limit(self.rules, s.scheme, d) is not None)
        if not routes:
            return None
        s, dst = self.rng.choice(routes)
        limit = _limit(self.rules, s.scheme, dst)
        assert limit is not None
        amount = Money(limit.minor + self.rng.randint(1, limit.minor), limit.currency)
        return self._message(
            "over_corridor", s, [(self.rng.choice(self._pool(s, dst)), amount)], now
        )

    def _over_cap(self, now: dt.datetime) -> Job | None:
        """One transfer above what the sender can pay, on a corridor without amount limits.

        Not merely above its cap: a sender that received more than it paid has that much
        more room. Positions sum to zero per currency and nobody goes below minus its cap,
        so no sender ever holds more than the others' caps together: above its own cap plus
        theirs, the transfer can never fit."""
        routes = self._routes(now, lambda s, d: not _limited(self.rules, s.scheme, d))
        if not routes:
            return None
        s, dst = self.rng.choice(routes)
        ccy = sm.corridor_currencies(s.scheme, dst, self.rules)[0]
        cap = self.caps.get((s.id, ccy), 10**10)
        room = sum(c for (_, c_ccy), c in self.caps.items() if c_ccy == ccy) + cap
        amount = Money(min(room + self.rng.randint(1, cap // 2 + 1), AMOUNT_MINOR_MAX), ccy)
        return self._message("over_cap", s, [(self.rng.choice(self._pool(s, dst)), amount)], now)

    def _reuse(
        self, s: sm.Sender, original: Job, pair: tuple[sm.Payee, Money], now: dt.datetime
    ) -> Job:
        """Another message (new message id) reusing the first end-to-end id, other amount."""
        seq = self._next_seq(s)
        msg_id = sm.message_id(s, self.tag, seq)
        amount = Money(pair[1].minor + 100, pair[1].currency)
        t = sm.make_transfer(s, pair[0], self.rng, msg_id=msg_id, created_at=now, amount=amount,
                             e2e=original.e2e_ids[0])  # fmt: skip
        return Job("id_reuse", s, sm.encode(s.scheme, [t], msg_id, now), [t.end_to_end_id])


def _limited(rules: CorridorRules, src: str, dst: str) -> bool:
    rule = rules.lookup(src, dst)
    return rule is not None and any(
        v is not None for v in (rule.per_tx_max_minor, rule.daily_max_minor, rule.yearly_max_minor)
    )


def _limit(rules: CorridorRules, src: str, dst: str) -> Money | None:
    """The smallest per-transaction or daily limit of the corridor, when the sender's scheme
    carries the limit currency."""
    rule = rules.lookup(src, dst)
    if rule is None or rule.limit_currency not in sm.corridor_currencies(src, dst, rules):
        return None
    found = [v for v in (rule.per_tx_max_minor, rule.daily_max_minor) if v is not None]
    return Money(min(found), rule.limit_currency) if found else None


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _caps(directory: Any, pick: Callable[[int, int], int] = max) -> dict[tuple[str, str], int]:
    """(participant, currency) -> the larger (or, with `pick=min`, the smaller: the
    effective cap) of net debit cap and liquidity cover, minor units."""
    caps = {}
    for p in directory.participants:
        for lim in getattr(p, "limits", ()):
            caps[(p.id, lim.currency)] = pick(
                lim.minor("net_debit_cap"), lim.minor("liquidity_cover")
            )
    return caps
