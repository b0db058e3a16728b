"""The chaos load driver: planned native messages at a steady rate, with a sender's retries.

Messages come from gateway.sim_plan (the demo's planner: everyday cross-border payments
plus a share of payees the receiving provider does not know and proxies nobody holds), sent
signed through gateway.client. Unlike `gateway.traffic.run_day`, which records one answer
per message, this driver keeps every attempt and behaves like a careful sender:

- an answer is *definite* when the gateway replied 200 or 400 with a status report;
- anything else (no answer, connection refused or reset, a timeout, 503) leaves the outcome
  unknown, and `resend_unanswered()` sends the very same message again later, as a real
  provider would, until a definite answer comes. The gateway must then answer with the
  stored outcome (an idempotent replay), never DUPL.

Every request's status, latency and (for 503) Retry-After header is counted, so a scenario
can assert "no 500, every 503 carries Retry-After, nothing past the timeout".
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from adapters.base import AdapterError
from adapters.registry import get_adapter
from gateway import sim_messages as sm
from gateway.client import MESSAGE_CONTENT_TYPE, MESSAGES_PATH, BaygateClient
from gateway.sim_plan import Job, Planner, TrafficPlan

ACCEPTED = frozenset({"ACSP", "ACCP", "ACSC", "PDNG"})
# Cases whose answer is known in advance; anything else is an unexpected answer.
EXPECTED = {
    "ok": ACCEPTED,
    "unknown_account": ACCEPTED,
    "unknown_proxy": frozenset({"RJCT/BE23"}),
}
CHAOS_SHARES = {"unknown_account": 0.02, "unknown_proxy": 0.01}
RESEND_ROUNDS_MAX = 30
SIGNED_AHEAD_S_MAX = 200.0  # the gateway refuses signatures older than 300 s by default
REPLY_BYTES_MAX = 1024 * 1024


@dataclass
class Answer:
    http_status: int  # 0: no answer at all
    outcome: str  # ACSP, RJCT/BE23, ... or NOANSWER, HTTP503, UNPARSABLE, MISSING

    @property
    def definite(self) -> bool:
        return self.http_status in (200, 400) and self.outcome not in ("UNPARSABLE", "MISSING")


@dataclass(slots=True)
class Attempt:
    """One request as sent and answered; the body is decoded only when asked (after the run)."""

    http_status: int
    body: bytes
    started: float  # time.monotonic()
    finished: float
    _answers: dict[str, Answer] | None = None

    def answers(self, job: Job) -> dict[str, Answer]:
        if self._answers is None:
            self._answers = _read(job, self.http_status, self.body)
            self.body = b""
        return self._answers


@dataclass
class Sent:
    job: Job
    signed: tuple[str, dict[str, str], float] | None = None  # URL, headers, when signed
    attempts: list[Attempt] = field(default_factory=list)

    def all_answers(self, e2e: str) -> list[Answer]:
        return [a.answers(self.job)[e2e] for a in self.attempts]

    def answer(self, e2e: str) -> Answer | None:
        """The first definite answer for `e2e`, if any."""
        return next((a for a in self.all_answers(e2e) if a.definite), None)

    @property
    def answered(self) -> bool:
        return all(self.answer(e) is not None for e in self.job.e2e_ids)


@dataclass
class RequestStats:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)  # 0 = no answer
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by type
    unavailable_without_retry_after: int = 0
    latency_max_s: float = 0.0
    over_timeout: int = 0  # answered (or given up) later than the request timeout

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "errors": dict(self.errors),
            "unavailable_without_retry_after": self.unavailable_without_retry_after,
            "latency_max_s": round(self.latency_max_s, 3),
            "over_timeout": self.over_timeout,
        }


class LoadDriver:
    """Sends planned messages to one gateway; keeps every attempt of every message.

    Messages are planned and signed ahead of the timed run (`prepare`), and replies decoded
    after it, so that the driver spends its share of the machine on sending.
    """

    def __init__(
        self,
        base_url: str,
        directory: Any,
        keys: Mapping[str, Ed25519PrivateKey],
        *,
        seed: int = 7,
        tag: str | None = None,
        timeout_s: float = 10.0,
        concurrency: int = 256,
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        senders = [sm.as_sender(p) for p in directory.participants
                   if p.role == "provider" and p.id in keys]  # fmt: skip
        plan = TrafficPlan(shares=dict(CHAOS_SHARES), seed=seed, tag=tag)
        self.planner = Planner(plan, senders, directory)
        self._signers = {s.id: BaygateClient(base_url, s.id, keys[s.id]) for s in senders}
        self.sent: list[Sent] = []
        self.stats = RequestStats()
        self.slipped = 0  # sends that waited for a free slot
        self.timed_out: list[float] = []  # when the requests that timed out were sent
        self._ready: deque[Sent] = deque()
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> LoadDriver:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()
        if self._session is not None:
            await self._session.close()

    def prepare(self, count: int) -> None:
        """Plan and sign `count` more messages (valid for SIGNED_AHEAD_S_MAX)."""
        for _ in range(count):
            self._ready.append(self._signed(Sent(self.planner.next_job())))

    def _signed(self, sent: Sent) -> Sent:
        job = sent.job
        path = MESSAGES_PATH.format(scheme=job.sender.scheme)
        url, headers = self._signers[job.sender.id].signed_headers(
            "POST", path, job.body, {"Content-Type": MESSAGE_CONTENT_TYPE}
        )
        sent.signed = (url, headers, time.monotonic())
        return sent

    def attempts(self) -> list[Attempt]:
        return [a for s in self.sent for a in s.attempts]

    async def run(
        self, rate_per_s: float, duration_s: float, stop: asyncio.Event | None = None
    ) -> float:
        """Send new messages at `rate_per_s` for `duration_s` (or until `stop`); returns the
        achieved rate. Requests still in flight are left running (see `drain`)."""
        loop = asyncio.get_running_loop()
        start, i = loop.time(), 0
        while loop.time() - start < duration_s and not (stop is not None and stop.is_set()):
            wait = start + i / rate_per_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._slots.locked():
                self.slipped += 1
            await self._slots.acquire()
            if not self._ready:
                self.prepare(1)
            sent = self._ready.popleft()
            self.sent.append(sent)
            self._spawn(sent)
            i += 1
        elapsed = loop.time() - start
        return i / elapsed if elapsed > 0 else 0.0

    def _spawn(self, sent: Sent) -> None:
        task = asyncio.create_task(self._attempt(sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _attempt(self, sent: Sent) -> None:
        try:
            if sent.signed is None or time.monotonic() - sent.signed[2] > SIGNED_AHEAD_S_MAX:
                self._signed(sent)
            assert sent.signed is not None
            url, headers, _ = sent.signed
            sent.attempts.append(await self._send(sent.job.body, url, headers))
        finally:
            sent.signed = None
            self._slots.release()

    async def _send(self, body: bytes, url: str, headers: dict[str, str]) -> Attempt:
        assert self._session is not None
        st = self.stats
        st.requests += 1
        started = time.monotonic()
        try:
            async with self._session.post(
                URL(url, encoded=True), data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:  # fmt: skip
                reply = await resp.content.read(REPLY_BYTES_MAX)
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            finished = time.monotonic()
            self._timing(finished - started)
            st.errors[type(exc).__name__] += 1
            st.by_status[0] += 1
            if isinstance(exc, TimeoutError):
                self.timed_out.append(started)
            return Attempt(0, b"", started, finished)
        finished = time.monotonic()
        self._timing(finished - started)
        st.by_status[status] += 1
        if status == 503 and not retry_after:
            st.unavailable_without_retry_after += 1
        return Attempt(status, reply, started, finished)

    def _timing(self, latency: float) -> None:
        self.stats.latency_max_s = max(self.stats.latency_max_s, latency)
        if latency > self.timeout_s:
            self.stats.over_timeout += 1

    async def resend_unanswered(
        self, gap_s: float = 1.0, rounds_max: int = RESEND_ROUNDS_MAX
    ) -> int:
        """Send every message without a definite answer again (freshly signed) until all have
        one; returns how many stayed unanswered after `rounds_max` rounds (0 expected)."""
        await self.drain()
        for _ in range(rounds_max):
            pending = [s for s in self.sent if not s.answered]
            if not pending:
                return 0
            for s in pending:
                await self._slots.acquire()
                self._spawn(self._signed(s))
            await self.drain()
            if any(not s.answered for s in pending):
                await asyncio.sleep(gap_s)
        return sum(1 for s in self.sent if not s.answered)

    # --- what the senders were told ------------------------------------------------------

    def answers(self) -> dict[tuple[str, str], tuple[str, Answer]]:
        """(sender, e2e) -> (case, first definite answer), for every answered transaction."""
        out = {}
        for s in self.sent:
            for e in s.job.e2e_ids:
                a = s.answer(e)
                if a is not None:
                    out[(s.job.sender.id, e)] = (s.job.case, a)
        return out

    def replays_refused(self) -> int:
        """Definite answers to a resend that contradict the first one: a duplicate refusal
        (the message is its own original), or another answer to a refused message. An
        accepted transfer may since have completed or been refused downstream."""
        bad = 0
        for s in self.sent:
            for e in s.job.e2e_ids:
                seen = [a.outcome for a in s.all_answers(e) if a.definite]
                for later in seen[1:]:
                    if later.startswith(("RJCT/DUPL", "RJCT/AM05")):
                        bad += 1
                    elif seen[0] not in ACCEPTED and later != seen[0]:
                        bad += 1
        return bad


def _read(job: Job, status: int, body: bytes) -> dict[str, Answer]:
    if status not in (200, 400):
        return {e: Answer(status, f"HTTP{status}") for e in job.e2e_ids}
    try:
        reports = get_adapter(job.sender.scheme).decode_status_reply(body)
    except AdapterError:
        return {e: Answer(status, "UNPARSABLE") for e in job.e2e_ids}
    found: dict[str, Answer] = {}
    for r in reports:
        outcome = f"{r.status}/{r.reason}" if r.reason else str(r.status)
        if r.is_group:
            for e in job.e2e_ids:
                found.setdefault(e, Answer(status, outcome))
        elif r.original_end_to_end_id in job.e2e_ids:
            found[r.original_end_to_end_id] = Answer(status, outcome)
    return {e: found.get(e, Answer(status, "MISSING")) for e in job.e2e_ids}
