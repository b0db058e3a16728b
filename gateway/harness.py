"""A whole Baygate on one machine: database, gateway, directory and provider simulators.

Used by `baygate demo`, the end-to-end tests, the benchmarks and the chaos runs, so that all
of them exercise the same real parts: PostgreSQL, the aiohttp gateway over TCP, and one
simulator HTTP server per scheme.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import directory as dirmod
from gateway import migrate
from gateway.app import create_app
from gateway.config import Settings
from gateway.db import open_database
from gateway.signing_keys import load_or_create_signing_key
from gateway.sim_messages import load_keys
from gateway.sim_state import SimRules
from gateway.simulator import RunningSimulators, run_simulators
from gateway.wiring import operator_token

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIRECTORY = REPO_ROOT / "examples" / "directory.yaml"
DEMO_KEYS = REPO_ROOT / "examples" / "demo-keys"


@dataclass
class Stack:
    settings: Settings
    base_url: str
    directory: dirmod.DirectoryIn
    keys: dict[str, Ed25519PrivateKey]
    sims: RunningSimulators
    app: web.Application
    operator_token: str
    dsn: str
    extras: dict[str, Any] = field(default_factory=dict)

    def participant(self, pid: str) -> dirmod.ParticipantIn:
        return next(p for p in self.directory.participants if p.id == pid)


def with_endpoints(d: dirmod.DirectoryIn, urls: Mapping[str, str]) -> dirmod.DirectoryIn:
    """The directory with every endpoint pointing at the running simulator of its scheme."""
    parts = [
        p.model_copy(update={"endpoint_url": f"{urls[p.scheme]}/providers/{p.id}"}) if p.scheme in urls else p
        for p in d.participants
    ]
    return d.model_copy(update={"participants": parts})


async def load_directory(dsn: str, d: dirmod.DirectoryIn) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.upgrade(conn)
        await dirmod.apply_directory(conn, d)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings,
    *,
    directory_file: Path = SAMPLE_DIRECTORY,
    rules: SimRules | Mapping[str, SimRules] | None = None,
    sim_ports: Mapping[str, int] | None = None,
    transform: Any = None,
) -> AsyncIterator[Stack]:
    """Start the simulators, load the directory pointing at them, then serve the gateway.

    `transform(directory) -> directory` may adjust the sample (caps, suspended members).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_signing_key(settings.data_dir)
    d = dirmod.load_file(directory_file)
    if transform is not None:
        d = transform(d)
    ports = dict(sim_ports) if sim_ports is not None else {"hk-fps": 0, "cn-ibps": 0, "mo-fps": 0}
    sims = await run_simulators(d.participants, key.public_key(), ports=ports, rules=rules)
    try:
        d = with_endpoints(d, sims.urls)
        db = await open_database(settings)
        try:
            await load_directory(db.dsn, d)
            app = create_app(settings.model_copy(update={"database_url": db.dsn}))
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_drain_s)
            await runner.setup()
            try:
                site = web.TCPSite(runner, settings.host, settings.port)
                await site.start()
                port = runner.addresses[0][1]
                keys = load_keys(DEMO_KEYS, [p.id for p in d.participants])
                yield Stack(
                    settings=settings, base_url=f"http://{settings.host}:{port}", directory=d,
                    keys=keys, sims=sims, app=app,
                    operator_token=operator_token(settings.operator_token, settings.data_dir), dsn=db.dsn,
                )
            finally:
                await runner.cleanup()
        finally:
            db.stop()
    finally:
        await sims.stop()
