"""Traffic generator: a day of provider submissions against a gateway, and `baygate send`.

`run_day` sends native messages (built by gateway.sim_messages through the adapters) as the
providers in a directory, at a set rate and concurrency, and records every acknowledgement
(end-to-end id -> ACSP / RJCT + reason). A configurable share of the traffic is made of
deliberate bad cases, each with the answers it may correctly get:

  unknown_proxy     a well-formed proxy no directory holds           RJCT BE23
  over_corridor     one debtor over a corridor's daily limit         RJCT AM02
                    (e.g. northbound HK -> Mainland above HKD 10,000)
  over_cap          above the sender's net debit cap, on a corridor  RJCT AM04, PDNG
                    without amount limits
  exact_duplicate   the same message sent again                      the first answer, or
                                                                     the transfer's later
                                                                     state (e.g. ACSC)
  id_reuse          an end-to-end id reused with another amount      RJCT DUPL / AM05
  unknown_account   an account the receiving simulator lacks         accepted now; the
                                                                     provider's AC01 reaches
                                                                     the sender by callback

Everyday traffic uses only corridors open at the time (clearing.corridors rules), in the
currencies they take, far below their per-person limits. Messages are planned from a seeded
RNG in order, before any answer is known, so the same seed at the same hours sends the same
traffic. A resend waits `resend_gap_s` after its original: signatures
have a one-second `created`, and an identical request signed in the same second would be
refused as a replay.

`send_file` is the body of `baygate send`: one signed message from a file, the answer back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.base import AdapterError
from adapters.registry import get_adapter
from clearing.corridors import DEFAULT_RULES, CorridorRules
from clearing.money import AMOUNT_MINOR_MAX, Money
from gateway import sim_messages as sm
from gateway.auth import load_private_key
from gateway.client import BaygateClient
from gateway.sim_messages import build_message, load_keys, payees_from_directory
from gateway.sim_state import ProviderBook

CASES = ("ok", "unknown_proxy", "over_corridor", "over_cap", "exact_duplicate", "id_reuse",
         "unknown_account")  # fmt: skip
DEFAULT_SHARES: dict[str, float] = {
    "unknown_proxy": 0.02, "over_corridor": 0.01, "over_cap": 0.005,
    "exact_duplicate": 0.01, "id_reuse": 0.01, "unknown_account": 0.02,
}  # fmt: skip
_ACCEPTED = frozenset({"ACSP", "ACCP", "ACSC", "PDNG"})
# Final statuses the sender hears by callback, for transfers the gateway accepted.
FINAL_EXPECTED: dict[str, frozenset[str]] = {
    "ok": frozenset({"ACSC"}),
    "unknown_account": frozenset({"RJCT/AC01"}),
}
EXPECTED: dict[str, frozenset[str]] = {
    "ok": _ACCEPTED,
    "unknown_account": _ACCEPTED,
    "unknown_proxy": frozenset({"RJCT/BE23"}),
    "over_corridor": frozenset({"RJCT/AM02"}),
    "over_cap": frozenset({"RJCT/AM04", "PDNG"}),
    "id_reuse": frozenset({"RJCT/DUPL", "RJCT/AM05"}),
}
LATENCY_SAMPLES_MAX = 100_000


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
    acks_max: int = 2_000_000

    def __post_init__(self) -> None:
        unknown = set(self.shares) - set(CASES)
        if unknown:
            raise ValueError(f"unknown cases {sorted(unknown)}")
        if any(v < 0 for v in self.shares.values()) or sum(self.shares.values()) > 1:
            raise ValueError("shares must be non-negative and sum to at most 1")
        if not 1 <= self.tx_per_msg_max <= 1000:
            raise ValueError("tx_per_msg_max must lie in [1, 1000]")


@dataclass(frozen=True, slots=True)
class Ack:
    """The gateway's answer for one transaction: a status and reason, or what went wrong."""

    case: str
    http_status: int  # 0 when no answer came
    status: str  # ACSP, RJCT, ... or NOANSWER, UNPARSABLE, MISSING, HTTP<code>
    reason: str | None = None
    sender: str = ""

    @property
    def outcome(self) -> str:
        return f"{self.status}/{self.reason}" if self.reason else self.status


def resend_answer_ok(original: Ack | None, resend: Ack) -> bool:
    """An exact resend gets the first answer again, or the transfer's later state: once
    accepted it may since have completed (ACSC) or been refused downstream, but never be
    called a duplicate of itself."""
    if original is None:
        return False
    if resend.outcome == original.outcome:
        return True
    if original.outcome not in _ACCEPTED:
        return False
    if resend.status in _ACCEPTED:
        return True
    return resend.status == "RJCT" and resend.reason not in ("DUPL", "AM05")


@dataclass
class _Job:
    case: str
    sender: sm.Sender
    body: bytes
    e2e_ids: list[str]
    follow: _Job | None = None  # sent after this one's answer (duplicate, id reuse)


@dataclass
class DaySummary:
    messages: int = 0
    transactions: int = 0
    elapsed_s: float = 0.0
    http: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    cases: dict[str, Counter[str]] = field(default_factory=dict)
    unexpected: Counter[str] = field(default_factory=Counter)
    acks: dict[str, Ack] = field(default_factory=dict)  # first answer per end-to-end id
    followups: dict[str, Ack] = field(default_factory=dict)  # answer to the resend / reuse
    e2e_by_case: dict[str, list[str]] = field(default_factory=dict)
    acks_dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def q(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else 0.0

        return {
            "messages": self.messages,
            "transactions": self.transactions,
            "elapsed_s": round(self.elapsed_s, 3),
            "messages_per_s": round(self.messages / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "http": {str(k): v for k, v in sorted(self.http.items())},
            "outcomes": dict(self.outcomes.most_common()),
            "cases": {c: dict(n.most_common()) for c, n in self.cases.items()},
            "unexpected": dict(self.unexpected),
            "acks_dropped": self.acks_dropped,
            "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0)},
        }


class _Planner:
    """Turns a seeded RNG into the day's messages, in order, before any answer is known.

    Everyday traffic only uses corridors the rules open at the time of planning, in the
    currencies they take, with amounts far below their per-person limits, so that it has no
    reason to be refused; the bad cases are made to break exactly one rule each.
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
    ) -> _Job:
        seq = self._next_seq(s, len(pairs) + 1)
        msg_id = sm.message_id(s, self.tag, seq)
        transfers = [
            sm.make_transfer(s, payee, self.rng, msg_id=msg_id, created_at=now, amount=amount,
                             e2e=sm.end_to_end_id(s, self.tag, seq + 1 + i))
            for i, (payee, amount) in enumerate(pairs)
        ]  # fmt: skip
        body = sm.encode(s.scheme, transfers, msg_id, now)
        return _Job(case, s, body, [t.end_to_end_id for t in transfers])

    def next_job(self) -> _Job:
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
        routes = self._routes(now, lambda s, d: True)
        if not routes:
            raise RuntimeError(
                f"no corridor open at {now.isoformat()} between the senders and payees"
            )
        s, dst = rng.choice(routes)
        ccy = sm.pick_currency(rng, sm.corridor_currencies(s.scheme, dst, self.rules))
        pool = self._pool(s, dst)
        if case == "unknown_proxy":
            payee = sm.unknown_proxy_payee(rng, rng.choice(pool))
            return self._message(case, s, [(payee, sm.everyday_amount(rng, ccy))], now)
        if case == "unknown_account":
            payee = sm.unknown_account_payee(rng, rng.choice(pool))
            return self._message(case, s, [(payee, sm.everyday_amount(rng, ccy))], now)
        n = rng.randint(1, self.plan.tx_per_msg_max) if case == "ok" else 1
        pairs = [(rng.choice(pool), sm.everyday_amount(rng, ccy)) for _ in range(n)]
        job = self._message("ok", s, pairs, now)
        if case == "exact_duplicate":
            job.follow = replace(job, case=case, follow=None)
        elif case == "id_reuse":
            job.follow = self._reuse(s, job, pairs[0], now)
        return job

    def _over_corridor(self, now: dt.datetime) -> _Job | None:
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

    def _over_cap(self, now: dt.datetime) -> _Job | None:
        """One transfer above the sender's cap, on a corridor without amount limits."""
        routes = self._routes(now, lambda s, d: not _limited(self.rules, s.scheme, d))
        if not routes:
            return None
        s, dst = self.rng.choice(routes)
        ccy = sm.corridor_currencies(s.scheme, dst, self.rules)[0]
        cap = self.caps.get((s.id, ccy), 10**10)
        amount = Money(min(cap + self.rng.randint(1, cap // 2 + 1), AMOUNT_MINOR_MAX), ccy)
        return self._message("over_cap", s, [(self.rng.choice(self._pool(s, dst)), amount)], now)

    def _reuse(
        self, s: sm.Sender, original: _Job, pair: tuple[sm.Payee, Money], now: dt.datetime
    ) -> _Job:
        """Another message (new message id) reusing the first end-to-end id, other amount."""
        seq = self._next_seq(s)
        msg_id = sm.message_id(s, self.tag, seq)
        amount = Money(pair[1].minor + 100, pair[1].currency)
        t = sm.make_transfer(s, pair[0], self.rng, msg_id=msg_id, created_at=now, amount=amount,
                             e2e=original.e2e_ids[0])  # fmt: skip
        return _Job("id_reuse", s, sm.encode(s.scheme, [t], msg_id, now), [t.end_to_end_id])


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


def _caps(directory: Any) -> dict[tuple[str, str], int]:
    """(participant, currency) -> the larger of net debit cap and liquidity cover, minor units."""
    caps = {}
    for p in directory.participants:
        for lim in getattr(p, "limits", ()):
            caps[(p.id, lim.currency)] = max(
                lim.minor("net_debit_cap"), lim.minor("liquidity_cover")
            )
    return caps


def _read_answer(job: _Job, status: int, body: bytes) -> dict[str, Ack]:
    """Per end-to-end id, the answer found in the gateway's reply."""
    sid = job.sender.id
    if status not in (200, 400):
        return {e: Ack(job.case, status, f"HTTP{status}", None, sid) for e in job.e2e_ids}
    try:
        reports = get_adapter(job.sender.scheme).decode_status_reply(body)
    except AdapterError:
        return {e: Ack(job.case, status, "UNPARSABLE", None, sid) for e in job.e2e_ids}
    found: dict[str, Ack] = {}
    for r in reports:
        reason = str(r.reason) if r.reason else None
        ack = Ack(job.case, status, str(r.status), reason, sid)
        if r.is_group:
            for e in job.e2e_ids:
                found.setdefault(e, ack)
        elif r.original_end_to_end_id in job.e2e_ids:
            found[r.original_end_to_end_id] = ack
    return {e: found.get(e, Ack(job.case, status, "MISSING", None, sid)) for e in job.e2e_ids}


class _Recorder:
    def __init__(self, plan: TrafficPlan, summary: DaySummary) -> None:
        self.plan, self.summary = plan, summary
        self.sample_rng = random.Random(plan.seed + 1)
        self.seen_latencies = 0

    def latency(self, ms: float) -> None:
        lat, self.seen_latencies = self.summary.latencies_ms, self.seen_latencies + 1
        if len(lat) < LATENCY_SAMPLES_MAX:
            lat.append(ms)
        else:  # reservoir sampling keeps a uniform sample of a long run
            i = self.sample_rng.randrange(self.seen_latencies)
            if i < LATENCY_SAMPLES_MAX:
                lat[i] = ms

    def record(self, job: _Job, http_status: int, acks: Mapping[str, Ack], first: _Job) -> None:
        s = self.summary
        s.messages += 1
        s.transactions += len(acks)
        s.http[http_status] += 1
        for e2e, ack in acks.items():
            s.outcomes[ack.outcome] += 1
            s.cases.setdefault(job.case, Counter())[ack.outcome] += 1
            if job.case == "exact_duplicate":
                ok = resend_answer_ok(s.acks.get(e2e), ack)
            else:
                ok = ack.outcome in EXPECTED[job.case]
            if not ok:
                s.unexpected[job.case] += 1
            if len(s.acks) + len(s.followups) >= self.plan.acks_max:
                s.acks_dropped += 1
                continue
            if job is first:
                s.acks[e2e] = ack
                s.e2e_by_case.setdefault(job.case, []).append(e2e)
            else:
                s.followups[e2e] = ack
                s.e2e_by_case.setdefault(job.case, []).append(e2e)


async def _send(client: BaygateClient, job: _Job, rec: _Recorder, first: _Job) -> float:
    """Send one message and record its answers; returns when it was sent (loop time)."""
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    try:
        reply = await client.post_message(job.sender.scheme, job.body)
        status, acks = reply.status, _read_answer(job, reply.status, reply.body)
    except (aiohttp.ClientError, TimeoutError):
        acks = {e: Ack(job.case, 0, "NOANSWER", None, job.sender.id) for e in job.e2e_ids}
        status = 0
    rec.latency((loop.time() - sent_at) * 1000)
    rec.record(job, status, acks, first)
    return sent_at


async def _run_job(
    job: _Job, client: BaygateClient, slots: asyncio.Semaphore, rec: _Recorder
) -> None:
    """Send a job holding one slot (taken by the caller); a follow-up takes a slot again."""
    try:
        sent_at = await _send(client, job, rec, job)
    finally:
        slots.release()
    if job.follow is None:
        return
    gap = sent_at + rec.plan.resend_gap_s - asyncio.get_running_loop().time()
    if gap > 0:
        await asyncio.sleep(gap)
    async with slots:
        await _send(client, job.follow, rec, job)


def final_outcomes(
    summary: DaySummary, book_of: Callable[[str], ProviderBook | None]
) -> dict[str, Counter[str]]:
    """Per case, the final status each sender's simulator was told by callback, for the
    transfers the gateway accepted ("NONE" while no final callback came). `book_of` maps a
    participant id to its simulator book, e.g. `RunningSimulators.book`."""
    out: dict[str, Counter[str]] = {}
    for e2e, ack in summary.acks.items():
        if ack.status not in _ACCEPTED:
            continue
        try:
            book = book_of(ack.sender)
        except KeyError:
            book = None
        final = book.final_status(e2e) if book is not None else None
        outcome = "NONE" if final is None else "/".join(str(x) for x in final if x is not None)
        out.setdefault(ack.case, Counter())[outcome] += 1
    return out


async def run_day(
    base_url: str,
    directory: Any,
    keys: Mapping[str, Ed25519PrivateKey],
    plan: TrafficPlan | None = None,
    *,
    rate_per_s: float = 100.0,
    duration_s: float | None = None,
    count: int | None = None,
    concurrency: int = 32,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_every_s: float = 1.0,
    timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> DaySummary:
    """Send planned messages at `rate_per_s` until `count` are planned or `duration_s` passes.

    `directory` is a parsed directory (gateway.directory.DirectoryIn: participants with
    limits, proxies); `keys` maps participant id -> private key. At most `concurrency`
    requests are in flight; when they are all busy the schedule slips rather than queueing
    without bound. Follow-up messages (resends) are extra and counted in `messages`.
    """
    plan = plan or TrafficPlan()
    if duration_s is None and count is None:
        raise ValueError("give duration_s or count")
    if rate_per_s <= 0 or concurrency < 1:
        raise ValueError("rate_per_s and concurrency must be positive")
    wanted = set(plan.senders) if plan.senders else None
    senders = [sm.as_sender(p) for p in directory.participants
               if p.role == "provider" and p.id in keys and (wanted is None or p.id in wanted)]  # fmt: skip
    if not senders:
        raise ValueError("no sender with a key")
    planner, summary = _Planner(plan, senders, directory, clock), DaySummary()
    rec = _Recorder(plan, summary)
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = {s.id: BaygateClient(base_url, s.id, keys[s.id], session, timeout_s=timeout_s)
                   for s in senders}  # fmt: skip
        slots, tasks = asyncio.Semaphore(concurrency), set[asyncio.Task[None]]()
        start = loop.time()
        next_progress, i = start + progress_every_s, 0
        while (count is None or i < count) and (
            duration_s is None or loop.time() - start < duration_s
        ):
            wait = start + i / rate_per_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await slots.acquire()
            job = planner.next_job()
            task = asyncio.create_task(_run_job(job, clients[job.sender.id], slots, rec))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            if on_progress is not None and loop.time() >= next_progress:
                summary.elapsed_s = loop.time() - start
                on_progress(summary.to_dict())
                next_progress = loop.time() + progress_every_s
        if tasks:
            await asyncio.gather(*tasks)
        summary.elapsed_s = loop.time() - start
    return summary


# --- baygate send -----------------------------------------------------------------------------

EXIT_OK, EXIT_REJECTED, EXIT_LOCAL, EXIT_REFUSED = 0, 1, 2, 3
FILE_BYTES_MAX = 8 * 1024 * 1024


def _read_inputs(file: Path, key_path: Path) -> tuple[bytes, Ed25519PrivateKey]:
    if file.stat().st_size > FILE_BYTES_MAX:
        raise ValueError(f"{file}: larger than {FILE_BYTES_MAX} bytes")
    return file.read_bytes(), load_private_key(key_path)


async def send_file_async(
    base_url: str,
    participant_id: str,
    key_path: Path | str,
    scheme: str,
    file: Path | str,
    *,
    timeout_s: float = 30.0,
) -> tuple[int, bytes]:
    """Send one message file as `participant_id`; return (exit code, the answer's bytes).

    Exit codes: 0 the gateway answered 200 (its native status report, which may still
    reject transactions); 1 it answered 400 (a native RJCT report: the message is refused);
    3 any other HTTP status (the body is problem+json); 2 nothing was sent or no answer came
    (unreadable file or key, transport error): the bytes then say why.
    """
    try:
        body, key = await asyncio.to_thread(_read_inputs, Path(file), Path(key_path))
    except (OSError, ValueError, TypeError) as exc:
        return EXIT_LOCAL, f"{exc}\n".encode()
    try:
        async with BaygateClient(base_url, participant_id, key, timeout_s=timeout_s) as client:
            reply = await client.post_message(scheme, body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return EXIT_LOCAL, f"no answer from {base_url}: {type(exc).__name__} {exc}\n".encode()
    code = {200: EXIT_OK, 400: EXIT_REJECTED}.get(reply.status, EXIT_REFUSED)
    return code, reply.body


def send_file(
    base_url: str, participant_id: str, key_path: Path | str, scheme: str, file: Path | str
) -> tuple[int, bytes]:
    """`send_file_async` for a command line (runs its own event loop)."""
    return asyncio.run(send_file_async(base_url, participant_id, key_path, scheme, file))


__all__ = [
    "CASES",
    "EXPECTED",
    "FINAL_EXPECTED",
    "Ack",
    "DaySummary",
    "TrafficPlan",
    "build_message",
    "final_outcomes",
    "load_keys",
    "run_day",
    "send_file",
    "send_file_async",
]
