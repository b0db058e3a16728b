"""The aiohttp application factory, used by `baygate serve`, the demo and the tests.

`create_app(settings)` returns an app whose cleanup context owns the database (embedded
server or DATABASE_URL), runs migrations unless told not to, and owns the asyncpg pool.
Handlers stay thin: decode, decide, persist, encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from gateway import migrate
from gateway.config import Settings
from gateway.db import Database, create_pool, open_database
from gateway.logging import get_logger
from gateway.metrics import set_db_ready, watch_event_loop

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DATABASE = web.AppKey("database", Database)
STARTED_AT = web.AppKey("started_at", float)
READY_TIMEOUT_S = 2.0
# Errors that mean "the database is not reachable right now": answered 503 + Retry-After.
DB_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,  # refused or missing socket while the server is down
    TimeoutError,
    # A connection the server ended mid-statement can leave asyncpg's protocol state
    # confused ("cannot switch to state ..."); the pool discards such connections.
    asyncpg.InternalClientError,
    # "the underlying connection is closed" (but DataError, a bad argument, stays a 500).
    asyncpg.InterfaceError,
)

_log = get_logger("baygate.app")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str = "", type_: str = "about:blank", **extra: Any) -> web.Response:
    """An RFC 9457 problem+json response."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {"Retry-After": "2"} if status == 503 else None
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    timeout_s = request.app[SETTINGS].request_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            resp = await handler(request)
    except TimeoutError:
        _log.warning("request_timeout", path=request.path, timeout_s=timeout_s)
        resp = problem(503, "Service Unavailable", f"the request did not complete within {timeout_s} s; retry later")
    except web.HTTPRequestEntityTooLarge:
        resp = problem(413, "Payload Too Large", "the request body exceeds the size limit")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/problem+json":
            resp = problem(exc.status, exc.reason, exc.text or "")
        else:
            raise
    except asyncpg.DataError:
        raise
    except DB_UNAVAILABLE as exc:
        _log.warning("database_unavailable", error=type(exc).__name__)
        resp = problem(503, "Service Unavailable", "the database is not reachable; retry later")
    resp.headers["X-Request-Id"] = rid
    return resp


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "up"})


async def readyz(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with pool.acquire() as conn:
                current = await migrate.is_current(conn)
    except Exception as exc:  # any failure to reach the database means not ready
        set_db_ready(False)
        return web.json_response({"status": "unavailable", "database": type(exc).__name__}, status=503)
    set_db_ready(current)
    if not current:
        return web.json_response({"status": "unavailable", "migrations": "pending"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    from gateway.metrics import render_latest

    # Rendering a large registry takes milliseconds: keep it off the event loop.
    body, content_type = await asyncio.to_thread(render_latest, request.headers.get("Accept"))
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp


def database_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        db = await open_database(settings)
        app[DATABASE] = db
        try:
            if settings.auto_migrate:
                conn = await asyncpg.connect(db.dsn, timeout=settings.db_connect_timeout_s)
                try:
                    applied = await migrate.upgrade(conn)
                finally:
                    await conn.close()
                if applied:
                    _log.info("migrations_applied", files=applied)
            pool = await create_pool(settings, db.dsn)
            app[POOL] = pool
            try:
                yield
            finally:
                await asyncio.wait_for(pool.close(), timeout=settings.shutdown_drain_s)
        finally:
            await asyncio.to_thread(db.stop)

    return ctx


def loop_lag_ctx(interval_s: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """Samples the event loop's lag while the app runs (metrics.watch_event_loop)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(watch_event_loop(interval_s), name="event-loop-lag")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx


def create_app(settings: Settings, *, with_gateway: bool = True) -> web.Application:
    """The app. `with_gateway=False` serves only health, readiness and metrics."""
    from gateway import api, openapi, wiring
    from gateway.metrics import http_metrics_middleware

    middlewares = [request_context, http_metrics_middleware]
    if with_gateway:
        middlewares.append(api.authenticate)
    app = web.Application(client_max_size=settings.request_body_bytes_max, middlewares=middlewares)
    app[SETTINGS] = settings
    app[STARTED_AT] = time.time()
    app.cleanup_ctx.append(database_ctx(settings))
    if settings.event_loop_lag_interval_s > 0:
        app.cleanup_ctx.append(loop_lag_ctx(settings.event_loop_lag_interval_s))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if with_gateway:
        app.cleanup_ctx.append(wiring.gateway_ctx)
        api.register(app)
        openapi.register(app)
    return app
