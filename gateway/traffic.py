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

What is sent is planned by gateway.sim_plan (everyday traffic only on corridors open at the
time, seeded). A resend waits `resend_gap_s` after its original: signatures have a
one-second `created`, and an identical request signed in the same second would be refused
as a replay.

`send_file` is the body of `baygate send`: one signed message from a file, the answer back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.base import AdapterError
from adapters.registry import get_adapter
from gateway import sim_messages as sm
from gateway.auth import load_private_key
from gateway.client import BaygateClient
from gateway.sim_messages import build_message, load_keys
from gateway.sim_plan import CASES, DEFAULT_SHARES, Job, Planner, TrafficPlan
from gateway.sim_state import ProviderBook

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


def _read_answer(job: Job, status: int, body: bytes) -> dict[str, Ack]:
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

    def record(self, job: Job, http_status: int, acks: Mapping[str, Ack], first: Job) -> None:
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
                s.unexpected[f"{job.case}:{ack.outcome}"] += 1
            if len(s.acks) + len(s.followups) >= self.plan.acks_max:
                s.acks_dropped += 1
                continue
            if job is first:
                s.acks[e2e] = ack
                s.e2e_by_case.setdefault(job.case, []).append(e2e)
            else:
                s.followups[e2e] = ack
                s.e2e_by_case.setdefault(job.case, []).append(e2e)


async def _send(client: BaygateClient, job: Job, rec: _Recorder, first: Job) -> float:
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
    job: Job, client: BaygateClient, slots: asyncio.Semaphore, rec: _Recorder
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
    planner, summary = Planner(plan, senders, directory, clock), DaySummary()
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
    "DEFAULT_SHARES",
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
