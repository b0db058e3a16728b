"""The service: /healthz, /readyz against a real database, /metrics, configuration errors."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.config import ConfigError, load_settings
from gateway.db import database_name

RECOVERY_PROBES_MAX = 50  # 0.1 s apart


async def test_readyz_green_when_migrated_red_when_not(db_dsn: str, empty_db_dsn: str, tmp_path) -> None:
    app = create_app(load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path))
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/readyz")
        assert r.status == 200
        assert (await client.get("/healthz")).status == 200
        m = await client.get("/metrics")
        assert m.status == 200
        assert "baygate_build_info" in await m.text()
    # A database with no migrations and auto-migrate off is not ready (health endpoints only:
    # the full gateway refuses to start on an unmigrated database).
    settings = load_settings(DATABASE_URL=empty_db_dsn, data_dir=tmp_path, auto_migrate=False)
    app = create_app(settings, with_gateway=False)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/readyz")
        assert r.status == 503
        assert (await r.json())["migrations"] == "pending"


async def test_readyz_red_when_database_goes_away(pg_dsn: str, db_dsn: str, tmp_path) -> None:
    app = create_app(load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/readyz")).status == 200
        name = database_name(db_dsn)
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            r = await client.get("/readyz")
            assert r.status == 503
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            # Ready again within a few probes: each probe that meets one of the pool's
            # connections the server ended discards it, and the pool opens new ones.
            statuses = []
            for _ in range(RECOVERY_PROBES_MAX):
                statuses.append((await client.get("/readyz")).status)
                if statuses[-1] == 200:
                    break
                await asyncio.sleep(0.1)
            assert statuses[-1] == 200, statuses
        finally:
            await admin.close()


@pytest.mark.parametrize(
    ("env", "name"),
    [({"BAYGATE_PORT": "http"}, "BAYGATE_PORT"), ({"BAYGATE_LOG_FORMAT": "xml"}, "BAYGATE_LOG_FORMAT")],
)
def test_invalid_configuration_names_the_variable(monkeypatch, env, name) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert name in str(info.value)
    assert "\n" not in str(info.value)
