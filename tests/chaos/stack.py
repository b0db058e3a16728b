"""The chaos stack: three processes that fail independently, plus the test process.

- PostgreSQL (tests.chaos.pg.PgServer), its own server, stoppable;
- the provider simulators (gateway.sim_process.SimulatorProcess), in a child process;
- the gateway (`baygate serve`, tests.chaos.gateway_proc.GatewayProcess), killable;
- the load driver and the checks in the test process.

The sample directory (examples/directory.yaml) is loaded with every endpoint pointing at the
simulators and caps raised, so that a long run measures crash safety rather than running
into net debit caps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from gateway import directory as dirmod
from gateway.harness import DEMO_KEYS, SAMPLE_DIRECTORY, load_directory, with_endpoints
from gateway.signing_keys import load_or_create_signing_key
from gateway.sim_messages import load_keys
from gateway.sim_process import SimulatorProcess
from gateway.sim_state import SimRules
from tests.chaos.gateway_proc import GatewayProcess
from tests.chaos.pg import PgServer

DB_NAME = "baygate"
CAP_FACTOR = 1000


@dataclass
class ChaosStack:
    root: Path
    pg: PgServer
    dsn: str
    directory: dirmod.DirectoryIn
    keys: dict[str, Any]
    sims: SimulatorProcess
    gateway: GatewayProcess

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=10)


def raise_caps(d: dirmod.DirectoryIn, factor: int = CAP_FACTOR) -> dirmod.DirectoryIn:
    def scaled(lim: dirmod.LimitIn) -> dirmod.LimitIn:
        return lim.model_copy(update={
            "net_debit_cap": str(Decimal(lim.net_debit_cap) * factor),
            "liquidity_cover": str(Decimal(lim.liquidity_cover) * factor),
        })  # fmt: skip

    parts = [p.model_copy(update={"limits": [scaled(x) for x in p.limits]}) for p in d.participants]
    return d.model_copy(update={"participants": parts})


async def _create_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def chaos_stack(
    root: Path,
    *,
    gateway_env: Mapping[str, str] | None = None,
    rules: SimRules | Mapping[str, SimRules] | None = None,
) -> AsyncIterator[ChaosStack]:
    """Start PostgreSQL, the simulators and the gateway; stop them all on the way out."""
    pg = PgServer()
    try:
        await asyncio.to_thread(pg.start)
        await _create_database(pg.admin_dsn)
        dsn = pg.dsn(DB_NAME)
        data_dir = root / "data"
        key = load_or_create_signing_key(data_dir)
        d = raise_caps(dirmod.load_file(SAMPLE_DIRECTORY))
        ports = {"hk-fps": 0, "cn-ibps": 0, "mo-fps": 0}
        sims = SimulatorProcess(d.participants, key.public_key(), ports=ports,
                                rules=rules or SimRules(records_max=2_000_000))  # fmt: skip
        async with sims:
            d = with_endpoints(d, sims.urls)
            await load_directory(dsn, d)
            keys = load_keys(DEMO_KEYS, [p.id for p in d.participants])
            gw = GatewayProcess(data_dir, dsn, root, env=gateway_env)
            await gw.start()
            try:
                yield ChaosStack(root, pg, dsn, d, keys, sims, gw)
            finally:
                await gw.stop()
    finally:
        await asyncio.to_thread(pg.destroy)
