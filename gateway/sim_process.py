"""The provider simulators in a process of their own, for benchmarks and chaos runs.

In the gateway's process the simulators share its event loop and core: every delivery the
gateway makes also costs it the simulator's signature check, decoding and reply, and the
figures measured are those of both. `SimulatorProcess` starts the same apps
(gateway.simulator.run_simulators) in a child Python process and talks to it only over
loopback HTTP: deliveries as usual, the books through GET /_sim/summary and
GET /_sim/final/{pid}.

Protocol with the child: the parent writes one JSON line of configuration on its stdin
(participants, gateway public key, ports, rules); the child answers one JSON line on stdout
with the base URL of every scheme once listening, then runs until SIGTERM or SIGINT, or
until its stdin closes (so that it cannot outlive a parent that died).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway import eventloop, gctune
from gateway.auth import public_key_from_b64, public_key_to_b64
from gateway.config import Settings
from gateway.sim_state import SimRules, rules_from_dict, rules_to_dict

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
READY_LINE_BYTES_MAX = 64 * 1024
# The simulators' process runs with the gateway's defaults for these.
GC_GEN0_ALLOCATIONS: int = Settings.model_fields["gc_gen0_allocations"].default
EVENT_LOOP: eventloop.EventLoopKind = Settings.model_fields["event_loop"].default


class _Entry:
    """A directory entry rebuilt in the child: what run_simulators reads."""

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.id, self.scheme, self.role = d["id"], d["scheme"], d.get("role", "provider")
        self.clearing_code, self.name = d["clearing_code"], d.get("name", "")
        self.endpoint_url = d.get("endpoint_url")


def _entry_dict(p: Any) -> dict[str, Any]:
    keys = ("id", "scheme", "role", "clearing_code", "name", "endpoint_url")
    return {k: getattr(p, k, None) for k in keys if getattr(p, k, None) is not None}


class SimulatorProcess:
    """A child process running the simulators; `async with` starts and stops it."""

    def __init__(
        self,
        participants: Iterable[Any],
        gateway_public_key: Ed25519PublicKey,
        *,
        ports: Mapping[str, int] | None = None,
        rules: SimRules | Mapping[str, SimRules] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if isinstance(rules, SimRules):
            rules_json: Any = rules_to_dict(rules)
        elif rules is not None:
            rules_json = {scheme: rules_to_dict(r) for scheme, r in rules.items()}
        else:
            rules_json = None
        self._config = {
            "participants": [_entry_dict(p) for p in participants],
            "gateway_public_key": public_key_to_b64(gateway_public_key),
            "ports": dict(ports) if ports is not None else None,
            "rules": rules_json,
            "per_scheme_rules": rules is not None and not isinstance(rules, SimRules),
            "host": host,
        }
        self.urls: dict[str, str] = {}
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.sim_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(self._config).encode() + b"\n")
        await self._proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("the simulator process did not start in time") from None
        if not line:
            await self.stop()
            raise RuntimeError("the simulator process exited before listening")
        self.urls = json.loads(line[:READY_LINE_BYTES_MAX])["urls"]

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def summary(self) -> dict[str, Any]:
        """scheme -> participant -> counters, as RunningSimulators.summary() gives them."""
        async with aiohttp.ClientSession() as session:
            out = {}
            for scheme, url in self.urls.items():
                async with session.get(f"{url}/_sim/summary") as resp:
                    out[scheme] = await resp.json()
            return out

    async def finals(self, scheme: str, pid: str) -> dict[str, list[str | None]]:
        """End-to-end id -> [status, reason] of the final callbacks participant `pid` got."""
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.urls[scheme]}/_sim/final/{pid}") as resp:
                resp.raise_for_status()
                return await resp.json()  # type: ignore[no-any-return]

    async def __aenter__(self) -> SimulatorProcess:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def _child() -> None:
    from gateway.simulator import run_simulators

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    rules: Any = config["rules"]
    if rules is not None:
        if config["per_scheme_rules"]:
            rules = {scheme: rules_from_dict(r) for scheme, r in rules.items()}
        else:
            rules = rules_from_dict(rules)
    sims = await run_simulators(
        [_Entry(d) for d in config["participants"]],
        public_key_from_b64(config["gateway_public_key"]),
        ports=config["ports"],
        rules=rules,
        host=config["host"],
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gctune.tune(GC_GEN0_ALLOCATIONS)
    sys.stdout.write(json.dumps({"urls": sims.urls}) + "\n")
    sys.stdout.flush()
    parent_gone = asyncio.ensure_future(reader.read())  # EOF when the parent's end closes
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({parent_gone, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (parent_gone, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sims.stop()


if __name__ == "__main__":
    eventloop.run(_child(), EVENT_LOOP)


__all__ = ["SimulatorProcess"]
