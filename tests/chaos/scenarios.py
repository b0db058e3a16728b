"""The two chaos scenarios, each a function of a plan returning a JSON-ready result.

Crash: steady load; the gateway is killed with SIGKILL at random moments and restarted;
after the last restart the load stops, senders resend what got no definite answer, the
gateway drains, and tests.chaos.checks verifies the records.

Outage: steady load; PostgreSQL is stopped (or frozen) for `outage_s` and started again.
Besides the same checks, every request must get an answer within its timeout (503 with
Retry-After while the database is away, never 500), /readyz must turn red and green again,
and submissions must succeed again within `recover_s_max` of the database's return.

Both are used by the tests (tests/chaos/test_*.py, quick and full) and by `bench/chaos.py`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.sim_state import SimRules
from tests.chaos.checks import in_flight, verify, wait_quiet
from tests.chaos.load import LoadDriver
from tests.chaos.stack import ChaosStack, chaos_stack

LOAD_S_MAX = 600.0
RECORDS_MAX = 2_000_000  # decisions each simulated provider remembers (none may be forgotten)
PROBE_INTERVAL_S = 0.2
PROBE_TIMEOUT_S = 3.0
Log = Callable[[str], None]
Inspect = Callable[[ChaosStack, LoadDriver, dict[str, Any]], Awaitable[None]]


def _quiet_log(_line: str) -> None:
    pass


SUMMARY_KEYS = ("scenario", "kills", "outages", "messages", "achieved_rate_per_s", "acknowledged",
                "found", "lost", "duplicated", "invariant_violations", "in_flight_at_failures",
                "in_flight_outcomes", "redeliveries", "outage")  # fmt: skip


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a run is judged by, for one printed line."""
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


@dataclass(frozen=True)
class CrashPlan:
    kills: int = 5
    rate_per_s: float = 500.0
    gap_s: tuple[float, float] = (4.0, 9.0)  # from a restart (or the start) to the next kill
    down_s: tuple[float, float] = (0.0, 1.0)  # dead before the restart begins
    tail_s: float = 5.0  # load after the last restart
    transfer_timeout_s: float = 30.0
    request_timeout_s: float = 10.0
    # Requests in flight at most: 500/s against a gateway answering in up to a few seconds
    # while it catches up after a restart needs thousands.
    concurrency: int = 4096
    # Every simulated provider answers this long after deciding (plus up to as much again),
    # so that a kill finds deliveries the receiver has applied but not yet answered.
    sim_delay_ms: int = 0
    seed: int = 1


@dataclass(frozen=True)
class OutagePlan:
    outage_s: float = 10.0
    rate_per_s: float = 500.0
    before_s: float = 5.0
    after_s: float = 10.0
    mode: str = "stop"  # stop: the server shuts down; freeze: SIGSTOP, connections hang
    # Requests in flight at most: while the database is frozen each one waits up to the
    # request timeout, so this bounds the load the driver can keep up during a freeze.
    concurrency: int = 4096
    recover_s_max: float = 5.0
    transfer_timeout_s: float = 30.0
    request_timeout_s: float = 10.0
    seed: int = 2


def _env(transfer_timeout_s: float, request_timeout_s: float) -> dict[str, str]:
    return {"BAYGATE_TRANSFER_TIMEOUT_S": str(transfer_timeout_s),
            "BAYGATE_REQUEST_TIMEOUT_S": str(request_timeout_s)}  # fmt: skip


async def crash_run(
    root: Path, plan: CrashPlan, log: Log = _quiet_log, inspect: Inspect | None = None
) -> dict[str, Any]:
    """Run the crash scenario; `inspect(stack, load, result)` may look further at the quiet
    system before it is torn down."""
    rng = random.Random(plan.seed)
    env = _env(plan.transfer_timeout_s, plan.request_timeout_s)
    rules = SimRules(delay_ms=plan.sim_delay_ms, delay_jitter_ms=plan.sim_delay_ms,
                     records_max=RECORDS_MAX)  # fmt: skip
    async with chaos_stack(root, gateway_env=env, rules=rules) as st:
        # The client waits a little longer than the gateway's own request timeout, so that a
        # request the gateway lets hang shows up as over_timeout rather than as a client error.
        timeout_s = plan.request_timeout_s + 2.0
        async with LoadDriver(st.gateway.base_url, st.directory, st.keys, seed=plan.seed,
                              timeout_s=timeout_s, concurrency=plan.concurrency) as load:  # fmt: skip
            expected_s = plan.kills * (plan.gap_s[1] + plan.down_s[1] + 2) + plan.tail_s
            load.prepare(int(plan.rate_per_s * min(expected_s, 120.0)))
            stop = asyncio.Event()
            runner = asyncio.create_task(load.run(plan.rate_per_s, LOAD_S_MAX, stop))
            kills, flying, ready_at = [], [], [time.monotonic()]
            overflows = listen_overflows()
            try:
                for k in range(plan.kills):
                    await asyncio.sleep(rng.uniform(*plan.gap_s))
                    await st.gateway.kill()
                    ids = await in_flight(st)
                    flying.append(ids)
                    await asyncio.sleep(rng.uniform(*plan.down_s))
                    restart_s = await st.gateway.start()
                    ready_at.append(time.monotonic())
                    kills.append({"in_flight": len(ids), "restart_s": round(restart_s, 2)})
                    log(f"kill {k + 1}/{plan.kills}: {len(ids)} transfers in flight, "
                        f"back in {restart_s:.1f} s")  # fmt: skip
                await asyncio.sleep(plan.tail_s)
            finally:
                stop.set()
                rate = await runner
            await load.drain()
            result = await _settle(st, load, flying, log, {
                "scenario": "crash", "plan": asdict(plan), "kills": len(kills),
                "outages": 0, "offered_rate_per_s": plan.rate_per_s,
                "achieved_rate_per_s": round(rate, 1), "kill_log": kills,
                "client_timeouts": _timeouts(load.timed_out, ready_at),
                "listen_overflows": _delta(overflows, listen_overflows()),
            })  # fmt: skip
            if inspect is not None:
                await inspect(st, load, result)
            return result


def _timeouts(sent_at: list[float], ready_at: list[float]) -> dict[str, Any]:
    """Requests that timed out at the client, and how long after the latest (re)start of the
    gateway each was sent."""
    since = [t - max(r for r in ready_at if r <= t) for t in sent_at]
    return {"count": len(sent_at),
            "sent_after_start_s_max": round(max(since), 2) if since else None}  # fmt: skip


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (Linux;
    machine-wide, so other programs' count too)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()
                 if ln.startswith("TcpExt:")]  # fmt: skip
        return int(lines[1][lines[0].index("ListenOverflows")])
    except (OSError, ValueError, IndexError):
        return None


def _delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


async def _settle(
    st: ChaosStack, load: LoadDriver, flying: list[set[str]], log: Log, result: dict[str, Any]
) -> dict[str, Any]:
    """Let senders resend, wait for the gateway to drain, then verify everything."""
    await load.drain()
    result["messages"] = len(load.sent)
    result["sends_delayed_for_a_free_slot"] = load.slipped
    result["requests_during_run"] = load.stats.to_dict()
    started = time.monotonic()
    result["unanswered_after_resends"] = await load.resend_unanswered()
    result["resend_s"] = round(time.monotonic() - started, 1)
    result["requests"] = load.stats.to_dict()
    result["quiet_after_s"] = round(await wait_quiet(st), 1)
    verdict = await verify(st, load, flying)
    if result["unanswered_after_resends"]:
        verdict.violate(f"{result['unanswered_after_resends']} messages never got an answer")
    if load.stats.by_status.get(500):
        verdict.violate(f"{load.stats.by_status[500]} requests answered 500")
    result.update(verdict.to_dict())
    log(f"{result['scenario']}: acknowledged {verdict.acknowledged}, found {verdict.found}, "
        f"lost {verdict.lost}, duplicated {verdict.duplicated}, "
        f"violations {len(verdict.violations)}")  # fmt: skip
    return result


class ReadyProbe:
    """Polls /readyz; keeps (monotonic time, HTTP status or 0) per probe."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyProbe:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self) -> None:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                started = time.monotonic()
                try:
                    async with session.get(f"{self.base_url}/readyz") as resp:
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                self.samples.append((started, status))
                await asyncio.sleep(PROBE_INTERVAL_S)


async def outage_run(root: Path, plan: OutagePlan, log: Log = _quiet_log) -> dict[str, Any]:
    env = _env(plan.transfer_timeout_s, plan.request_timeout_s)
    async with chaos_stack(root, gateway_env=env) as st:
        timeout_s = plan.request_timeout_s + 2.0
        async with LoadDriver(st.gateway.base_url, st.directory, st.keys, seed=plan.seed,
                              timeout_s=timeout_s, concurrency=plan.concurrency) as load:  # fmt: skip
            total_s = plan.before_s + plan.outage_s + plan.after_s
            load.prepare(int(plan.rate_per_s * total_s))
            async with ReadyProbe(st.gateway.base_url) as probe:
                runner = asyncio.create_task(load.run(plan.rate_per_s, total_s))
                try:
                    flying, t_down, t_up = await _outage(st, plan, log)
                finally:
                    rate = await runner
                await load.drain()
            timing = _outage_timing(load, probe.samples, t_down, t_up, plan)
            result = await _settle(st, load, [flying], log, {
                "scenario": f"outage-{plan.mode}", "plan": asdict(plan), "kills": 0,
                "outages": 1, "offered_rate_per_s": plan.rate_per_s,
                "achieved_rate_per_s": round(rate, 1), "outage": timing,
            })  # fmt: skip
    result["violations"] += timing["violations"]
    result["invariant_violations"] += len(timing["violations"])
    return result


async def _outage(st: ChaosStack, plan: OutagePlan, log: Log) -> tuple[set[str], float, float]:
    """Take the database away for `outage_s` after `before_s`; returns the transfers in
    flight just before, and when it went and came back (monotonic)."""
    await asyncio.sleep(plan.before_s)
    flying = await in_flight(st)
    t_down = time.monotonic()
    await asyncio.to_thread(st.pg.freeze if plan.mode == "freeze" else st.pg.stop)
    log(f"database {plan.mode}: {len(flying)} transfers in flight")
    await asyncio.sleep(max(0.0, plan.outage_s - (time.monotonic() - t_down)))
    await asyncio.to_thread(st.pg.thaw if plan.mode == "freeze" else st.pg.start)
    t_up = time.monotonic()
    log(f"database back after {t_up - t_down:.1f} s")
    return flying, t_down, t_up


def _outage_timing(
    load: LoadDriver, samples: list[tuple[float, int]], t_down: float, t_up: float, plan: OutagePlan
) -> dict[str, Any]:
    """Readiness and service around the outage, relative to the database's return."""
    bad: list[str] = []
    during = Counter(a.http_status for a in load.attempts() if t_down <= a.started < t_up)
    ok_after = [a.finished for a in load.attempts() if a.started >= t_up and a.http_status == 200]
    failed_after = [a.started for a in load.attempts()
                    if a.started >= t_up and a.http_status not in (200, 400)]  # fmt: skip
    red = [t for t, s in samples if t_down <= t < t_up and s != 200]
    green_after = [t for t, s in samples if t >= t_up and s == 200]
    served_s = (min(ok_after) - t_up) if ok_after else None
    last_failure_s = (max(failed_after) - t_up) if failed_after else 0.0
    ready_s = (min(green_after) - t_up) if green_after else None
    if not red:
        bad.append("/readyz never went red while the database was away")
    if ready_s is None:
        bad.append("/readyz never went green again")
    # Served again: every submission sent `recover_s_max` after the return succeeds and, after
    # a stop, the first success comes within it too. After a freeze the requests held during
    # it (thousands) are worked off first; how long that takes is reported, not judged.
    late_first = plan.mode == "stop" and served_s is not None and served_s > plan.recover_s_max
    if served_s is None or last_failure_s > plan.recover_s_max or late_first:
        bad.append(f"not served again within {plan.recover_s_max} s of the database's return: "
                   f"first success {served_s} s, last failure {last_failure_s:.1f} s")  # fmt: skip
    if load.stats.over_timeout:
        bad.append(f"{load.stats.over_timeout} requests took longer than {load.timeout_s} s")
    if load.stats.unavailable_without_retry_after:
        bad.append(f"{load.stats.unavailable_without_retry_after} 503 answers lack Retry-After")
    if during.get(500):
        bad.append(f"{during[500]} requests answered 500 during the outage")
    return {
        "down_s": round(t_up - t_down, 2),
        "statuses_during": {str(k): v for k, v in sorted(during.items())},
        "readyz_red_samples": len(red),
        "readyz_green_after_s": None if ready_s is None else round(ready_s, 2),
        "first_success_after_s": None if served_s is None else round(served_s, 2),
        "last_failure_after_s": round(last_failure_s, 2),
        "violations": bad,
    }
