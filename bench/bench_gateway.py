"""Gateway benchmark: signed submissions over HTTP to `baygate serve` in processes of its own.

PostgreSQL, the provider simulators, the gateway and a bare aiohttp JSON echo server each run
in processes of their own (bench.gateway_stack): the gateway as deployed, one process per core
sharing a port (`BENCH_GATEWAY_PROCESSES` to choose), and the echo server likewise; load
comes from wrk (closed loop) and from bench.load (open loop), also in processes of their own.
See
docs/decisions/0007-gateway-throughput.md for the method and the figures.

Figures (medians over the rounds of one run):
- gateway_single_transfers_per_s: closed loop, `CONNECTIONS` connections, one-transaction
  messages from every provider of the sample directory (pacs.008 and ibps.101, proxies and
  accounts, same-scheme and cross-border with FX): transactions answered ACSP per second.
  After each round the transfers of the round are counted in the database (`transfers` and
  `clearing_transfers`): every ACSP answer must be there. Deliveries run as usual.
- gateway_vs_echo_ratio: per round, the figure above / the echo server's requests per second
  under the same wrk, connections and duration, measured just before.
- gateway_p99_ms_at_1000: open loop at 1,000 one-transaction messages a second for
  `OPEN_S` seconds; latency from each request's scheduled time to its answer.
- e2e_transfers_per_s: a burst of `E2E_MESSAGES` one-transaction messages; transfers
  committed in the clearing store and recorded COMMITTED by the gateway, divided by the time
  from the first send to the last commit.
- gateway_bulk_transfers_per_s: closed loop, `BULK_CONNECTIONS` connections, pacs.008
  messages of 1,000 transactions: transactions answered ACSP per second.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg

from bench import cpu, load
from bench.gateway_stack import Stack, build_requests, echo_requests, requests_file, running

ROUNDS = 3
ROUND_S = 5.0
CONNECTIONS = 64
SINGLE_PER_ROUND_MAX = 30_000  # requests signed per round: above any rate reached here
ECHO_REQUESTS = 5_000
OPEN_RATE_PER_S = 1_000.0
OPEN_S = 10.0
OPEN_CONNECTIONS_MAX = 512
E2E_MESSAGES = 6_000
E2E_PYSPY_S = 5.0  # py-spy samples the first seconds of the e2e burst (BENCH_PYSPY_DIR)
BULK_TX = 1_000
BULK_MESSAGES = 120
BULK_CONNECTIONS = 4
BULK_S = 6.0
DRAIN_TIMEOUT_S = 90.0
WORKERS = 2


async def _drain(dsn: str, timeout_s: float = DRAIN_TIMEOUT_S) -> float:
    """Wait until the outbox holds nothing undone; returns the seconds waited."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        while time.perf_counter() - started < timeout_s:
            if not await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL"):
                break
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _undelivered(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE done_at IS NULL AND kind = 'deliver'"
        ))
    finally:
        await conn.close()


async def _recorded(dsn: str, tag: str) -> dict[str, int]:
    """Transfers of a phase (end-to-end ids start with E<tag>) by gateway state and tx status."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT t.state, t.tx_status, count(*) AS n, count(c.id) AS cleared
                 FROM transfers t LEFT JOIN clearing_transfers c ON c.id = t.id
                WHERE t.end_to_end_id LIKE $1 GROUP BY 1, 2""",
            f"E{tag}%",
        )
    finally:
        await conn.close()
    out: dict[str, int] = {}
    for r in rows:
        out[f"{r['state']}/{r['tx_status']}"] = r["n"]
        out["cleared"] = out.get("cleared", 0) + r["cleared"]
    return out


def _pyspy(pid: int, name: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """When BENCH_PYSPY_DIR is set, sample the gateway with py-spy during a phase."""
    folder = os.environ.get("BENCH_PYSPY_DIR")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy) if spy.exists() else "py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", str(Path(folder) / f"{name}.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _pyspies(s: Stack, name: str, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy of the gateway and of the simulators during a phase (BENCH_PYSPY_DIR)."""
    sims = cpu.child_running("gateway.sim_process")
    targets = [(s.gateway_pid, name), *([(sims, f"{name}-sims")] if sims is not None else [])]
    return [spy for pid, label in targets if (spy := _pyspy(pid, label, seconds)) is not None]


async def _closed(
    s: Stack, url: str, requests: list[bytes], seconds: float, connections: int, *,
    wrap: bool = False, python: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """A closed-loop run; the result carries the CPU seconds used meanwhile (bench.cpu).
    `python` drives with bench.load (a finite set of requests: it stops when they run out)."""
    before = s.meter.snapshot()
    with requests_file(requests) as path:
        if python:
            res = await asyncio.to_thread(
                load.run_python_closed, url, path, duration_s=seconds, connections=connections
            )
        else:
            res = await asyncio.to_thread(
                load.run_closed, url, path, duration_s=seconds, connections=connections, wrap=wrap
            )
    res["cpu_s"] = s.meter.since(before, s.meter.snapshot())
    return res


async def _throughput(s: Stack, pool: ProcessPoolExecutor, log: dict[str, Any]) -> None:
    warm = build_requests(pool, s.url, "W", 3_000)
    await _closed(s, s.url, warm, 2.0, CONNECTIONS)
    await _drain(s.dsn)
    rates, ratios = [], []
    for r in range(ROUNDS):
        tag = f"R{r}"
        reqs = build_requests(pool, s.url, tag, SINGLE_PER_ROUND_MAX)
        echo_reqs = echo_requests(s.echo_url, reqs, ECHO_REQUESTS)
        echo = await _closed(s, s.echo_url, echo_reqs, ROUND_S, CONNECTIONS, wrap=True)
        spies = _pyspies(s, f"single-{r}", ROUND_S) if r == 0 else []
        gw = await _closed(s, s.url, reqs, ROUND_S, CONNECTIONS)
        before = s.meter.snapshot()
        for spy in spies:
            spy.wait()
        drained_s = await _drain(s.dsn)
        gw["drain_cpu_s"] = s.meter.since(before, s.meter.snapshot())
        recorded = await _recorded(s.dsn, tag)
        durable = sum(n for k, n in recorded.items() if k != "cleared" and not k.endswith("RJCT"))
        if durable < gw["accepted"]:
            raise AssertionError(f"{gw['accepted']} ACSP answers but {durable} transfers recorded")
        rate = gw["accepted"] / gw["duration_s"]
        echo_rate = echo["requests"] / echo["duration_s"]
        rates.append(rate)
        ratios.append(rate / echo_rate)
        log.setdefault("rounds", []).append(
            {"gateway": gw, "echo": echo, "recorded": recorded, "drain_s": round(drained_s, 1)}
        )
    log["gateway_single_transfers_per_s"] = round(statistics.median(rates))
    log["gateway_vs_echo_ratio"] = round(statistics.median(ratios), 3)


async def _open_loop(s: Stack, pool: ProcessPoolExecutor, log: dict[str, Any]) -> None:
    n = int(OPEN_RATE_PER_S * OPEN_S)
    reqs = build_requests(pool, s.url, "O", n)
    with requests_file(reqs) as path:
        res = await asyncio.to_thread(
            load.run_open, s.url, path, rate_per_s=OPEN_RATE_PER_S, duration_s=OPEN_S,
            connections_max=OPEN_CONNECTIONS_MAX,
        )  # fmt: skip
    log["open"] = res
    before = s.meter.snapshot()
    log["open_drain_s"] = round(await _drain(s.dsn), 1)
    res["drain_cpu_s"] = s.meter.since(before, s.meter.snapshot())
    log["gateway_p99_ms_at_1000"] = res["p99_ms"]


async def _e2e(s: Stack, pool: ProcessPoolExecutor, log: dict[str, Any]) -> None:
    reqs = build_requests(pool, s.url, "X", E2E_MESSAGES)
    started = time.time()
    before = s.meter.snapshot()
    spies = _pyspies(s, "e2e", E2E_PYSPY_S)
    res = await _closed(s, s.url, reqs, 60.0, CONNECTIONS, python=True)
    await _drain(s.dsn)
    for spy in spies:
        spy.wait()
    res["total_cpu_s"] = s.meter.since(before, s.meter.snapshot())
    conn = await asyncpg.connect(s.dsn)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS n, EXTRACT(EPOCH FROM max(t.updated_at)) AS last
                 FROM transfers t JOIN clearing_transfers c ON c.id = t.id
                WHERE t.end_to_end_id LIKE 'EX%' AND t.state = 'COMMITTED'
                  AND c.state = 'COMMITTED'"""
        )
    finally:
        await conn.close()
    log["e2e"] = {
        "submit": res,
        "committed": row["n"],
        "seconds": round(float(row["last"]) - started, 3),
    }
    log["e2e_transfers_per_s"] = round(row["n"] / (float(row["last"]) - started))


async def _bulk(s: Stack, pool: ProcessPoolExecutor, log: dict[str, Any]) -> None:
    reqs = build_requests(
        pool, s.url, "B", BULK_MESSAGES, n_tx=BULK_TX, schemes=("hk-fps", "mo-fps")
    )
    spies = _pyspies(s, "bulk", BULK_S)
    res = await _closed(s, s.url, reqs, BULK_S, BULK_CONNECTIONS, python=True)
    for spy in spies:
        spy.wait()
    # The phase measures acceptance; deliveries share the machine meanwhile. How many were
    # still to deliver at its end, and how long they took, tell whether they kept up.
    res["undelivered_at_end"] = await _undelivered(s.dsn)
    before = s.meter.snapshot()
    res["drain_s"] = round(await _drain(s.dsn), 1)
    res["drain_cpu_s"] = s.meter.since(before, s.meter.snapshot())
    log["bulk"] = res
    log["gateway_bulk_transfers_per_s"] = round(res["accepted"] / res["duration_s"])


PHASES = {"single": _throughput, "open": _open_loop, "e2e": _e2e, "bulk": _bulk}


def _phases() -> list[str]:
    """`BENCH_PHASES=single,bulk` runs only those phases (for side-by-side comparisons)."""
    wanted = os.environ.get("BENCH_PHASES", "")
    names = [n.strip() for n in wanted.split(",") if n.strip()] or list(PHASES)
    unknown = sorted(set(names) - set(PHASES))
    if unknown:
        raise ValueError(f"unknown BENCH_PHASES {unknown}; known: {sorted(PHASES)}")
    return [n for n in PHASES if n in names]


def _cpu_ms_per_transfer(log: dict[str, Any]) -> dict[str, float]:
    """CPU milliseconds per accepted transfer by process group: the single rounds with their
    drains (every accepted transfer delivered and committed), and the bulk phase."""
    out: dict[str, float] = {}
    rounds = log.get("rounds", [])
    accepted = sum(r["gateway"]["accepted"] for r in rounds)
    if accepted:
        for group in ("gateway", "simulators", "postgres", "machine"):
            cpu_s = sum(
                r["gateway"]["cpu_s"].get(group, 0.0) + r["gateway"]["drain_cpu_s"].get(group, 0.0)
                for r in rounds
            )
            out[f"single_{group}"] = round(cpu_s / accepted * 1e3, 3)
    bulk = log.get("bulk")
    if bulk and bulk["accepted"]:
        for group in ("gateway", "postgres", "machine"):
            out[f"bulk_{group}"] = round(bulk["cpu_s"].get(group, 0.0) / bulk["accepted"] * 1e3, 3)
    return out


async def _run(log: dict[str, Any]) -> None:
    with ProcessPoolExecutor(WORKERS) as pool:
        async with running() as s:
            for name in _phases():
                await PHASES[name](s, pool, log)
    log["cpu_ms_per_transfer"] = _cpu_ms_per_transfer(log)


KEYS = ("gateway_single_transfers_per_s", "gateway_p99_ms_at_1000", "gateway_vs_echo_ratio",
        "gateway_bulk_transfers_per_s", "e2e_transfers_per_s")  # fmt: skip


def run() -> dict[str, float | int]:
    log: dict[str, Any] = {}
    asyncio.run(_run(log))
    if os.environ.get("BENCH_VERBOSE"):
        import json

        print(json.dumps({k: v for k, v in log.items() if k not in KEYS}, indent=1, default=str))
    return {k: log[k] for k in KEYS if k in log}


if __name__ == "__main__":
    print(run())
