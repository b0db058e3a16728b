"""`baygate serve` in a child process beside in-process provider simulators.

The hostile-input runs measure the gateway's own memory: with the gateway in its own process,
/proc/<pid>/status gives its resident size (VmRSS) and its peak (VmHWM), untouched by the
bodies the test process builds and sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

from gateway import directory as dirmod
from gateway.harness import DEMO_KEYS, SAMPLE_DIRECTORY, load_directory, with_endpoints
from gateway.signing_keys import load_or_create_signing_key
from gateway.sim_messages import load_keys
from gateway.simulator import RunningSimulators, run_simulators

BAYGATE_BIN = Path(sys.executable).with_name("baygate")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
OPERATOR_TOKEN = "reliability-operator-token-0123456789"


@dataclass
class Served:
    base_url: str
    pid: int
    dsn: str
    directory: dirmod.DirectoryIn
    keys: dict[str, Any]
    sims: RunningSimulators
    operator_token: str
    log_path: Path
    process_urls: list[str]  # each process's own address (BAYGATE_PROCESS_PORT)

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (peak resident) of the gateway process, in KiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _open_log(data_dir: Path, process: int = 0) -> IO[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return open(data_dir / ("gateway.log" if process == 0 else f"gateway-{process}.log"), "wb")


async def _wait_ready(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"the gateway exited while starting:\n{_tail(log)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway was not ready within {READY_TIMEOUT_S} s:\n{_tail(log)}")


@contextlib.asynccontextmanager
async def served_gateway(
    dsn: str, data_dir: Path, processes: int = 1, **env: str
) -> AsyncIterator[Served]:
    """Simulators in this process, the sample directory pointing at them, `baygate serve` apart:
    `processes` of them sharing one port (SO_REUSEPORT), each also on a port of its own."""
    key = load_or_create_signing_key(data_dir)
    d = dirmod.load_file(SAMPLE_DIRECTORY)
    sims = await run_simulators(
        d.participants, key.public_key(), ports={s: 0 for s in ("hk-fps", "cn-ibps", "mo-fps")}
    )
    log = data_dir / "gateway.log"
    procs: list[asyncio.subprocess.Process] = []
    try:
        d = with_endpoints(d, sims.urls)
        await load_directory(dsn, d)
        port = free_port()
        own_ports = [free_port() for _ in range(processes)]
        for i, own in enumerate(own_ports):
            child_env = {k: v for k, v in os.environ.items() if not k.startswith("BAYGATE_")}
            child_env.update({
                "DATABASE_URL": dsn, "BAYGATE_DATA_DIR": str(data_dir), "BAYGATE_PORT": str(port),
                "BAYGATE_HOST": "127.0.0.1", "BAYGATE_OPERATOR_TOKEN": OPERATOR_TOKEN,
                "BAYGATE_LOG_FORMAT": "json", "BAYGATE_LOG_LEVEL": "error",
                "BAYGATE_REUSE_PORT": str(processes > 1).lower(),
                "BAYGATE_PROCESS_PORT": str(own), **env,
            })  # fmt: skip
            with _open_log(data_dir, i) as out:
                procs.append(await asyncio.create_subprocess_exec(
                    str(BAYGATE_BIN), "serve", env=child_env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=out, stderr=asyncio.subprocess.STDOUT,
                ))  # fmt: skip
        process_urls = [f"http://127.0.0.1:{own}" for own in own_ports]
        for url, proc in zip(process_urls, procs, strict=True):
            await _wait_ready(url, proc, log)
        keys = load_keys(DEMO_KEYS, [p.id for p in d.participants])
        yield Served(f"http://127.0.0.1:{port}", procs[0].pid, dsn, d, keys, sims,
                     OPERATOR_TOKEN, log, process_urls)  # fmt: skip
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await sims.stop()
