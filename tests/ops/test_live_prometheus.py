"""A real Prometheus scrapes the gateway's registry and evaluates the shipped alert rules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio
from aiohttp import web

from gateway import metrics
from tests.ops.conftest import RULE_FILE, touch_every_metric
from tests.ops.prom import Prometheus, running_prometheus

TRANSFERS = (
    'baygate_transfers_total{source_scheme="hk-fps",destination_scheme="cn-ibps",status="ACSC"}'
)
LABELS = {"source_scheme": "hk-fps", "destination_scheme": "cn-ibps", "status": "ACSC"}


async def serve_metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.render_latest(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


@asynccontextmanager
async def metrics_server() -> AsyncIterator[str]:
    """A tiny aiohttp server exposing the registry at /metrics; yields its URL."""
    app = web.Application(middlewares=[metrics.http_metrics_middleware])
    app.router.add_get("/metrics", serve_metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


async def evaluated_rules(prom, timeout_s: float = 30.0) -> list[dict]:
    """Every loaded rule, once each has been evaluated at least once."""
    deadline = time.monotonic() + timeout_s
    while True:
        groups = (await prom.api("rules"))["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            return rules
        await asyncio.sleep(0.2)


def registry_value(name: str, labels: dict[str, str]) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def prom(tmp_path_factory) -> AsyncIterator[Prometheus]:
    """One Prometheus for this module (its first scrape takes ~6 s), loading the shipped rules."""
    touch_every_metric()
    metrics.set_snapshot(
        metrics.Snapshot(
            positions=(
                metrics.PositionRow("live-hk-003", "HKD", 9_000, 700, 10_000, 5_000),
                metrics.PositionRow("live-cn-001", "CNY", 1_000, 0, 10_000, 0),
            )
        )
    )
    work_dir = tmp_path_factory.mktemp("prometheus")
    async with (
        metrics_server() as url,
        running_prometheus(url, work_dir, rule_files=[RULE_FILE]) as running,
    ):
        yield running


async def test_prometheus_scrapes_counters_and_snapshot_gauges(prom):
    assert await prom.query_value('up{job="baygate"}') == 1.0
    seen = await prom.query_value(TRANSFERS)
    assert seen == registry_value("baygate_transfers_total", LABELS)

    for _ in range(5):
        metrics.record_transfer("hk-fps", "cn-ibps", "ACSC")
    await prom.wait_for(f"{TRANSFERS} == {seen + 5}")

    ratio = await prom.query_value(
        'baygate_cap_utilisation_ratio{participant="live-hk-003",currency="HKD"}'
    )
    assert ratio == 0.97
    # The scrape itself went through the middleware, under its route template.
    await prom.wait_for(
        'baygate_http_request_duration_seconds_count{route="/metrics",status_class="2xx"} > 0'
    )


async def test_shipped_alert_rules_evaluate_cleanly_and_fire(prom):
    pending = await prom.wait_for('ALERTS{alertname="BaygateParticipantCapCritical"}')
    assert {a["metric"]["participant"] for a in pending} == {"live-hk-003"}

    rules = await evaluated_rules(prom)
    assert len(rules) >= 10
    assert {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"} == {}
    assert not await prom.query('ALERTS{alertname="BaygateDown"}')
