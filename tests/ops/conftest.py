"""Fixtures for the operations tests: a fully touched registry and a real Prometheus."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from gateway import metrics
from tests.ops.prom import Prometheus, running_prometheus

REPO_ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = REPO_ROOT / "deploy" / "prometheus"
RULE_FILE = PROM_DIR / "rules" / "baygate-alerts.yml"
RULE_TEST_FILE = PROM_DIR / "rules" / "baygate-alerts.test.yml"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"


def touch_every_metric() -> None:
    """Give every labelled metric at least one series, so the exposition names them all."""
    metrics.preinitialise(["hk-801"])
    metrics.record_corridor_limit_hit("hk-fps>cn-ibps", "per_day")
    metrics.observe_http("POST", "/v1/transfers", 202, 0.01)
    metrics.set_lsm_liquidity_efficiency("HKD", 4.0)
    metrics.set_db_ready(True)
    metrics.set_snapshot(
        metrics.Snapshot(
            positions=(metrics.PositionRow("hk-801", "HKD", 100, 0, 1000, 500),),
            window=metrics.WindowRow(open_age_s=1.0, open_transfers=1, schedule_s=3600.0),
            settlements=metrics.SettlementRow(by_state={"SETTLED": 1}, overdue=0),
            outbox=metrics.OutboxRow(depth=0, oldest_age_s=0.0),
            db_pool=metrics.DbPoolRow(size=2, in_use=0, size_max=16),
            lsm_queue=(metrics.LsmQueueRow("HKD", 0, 0),),
            lsm_payer_queue=(metrics.LsmPayerQueueRow("hk-801", "HKD", 0, 0),),
        )
    )


@pytest.fixture
def exposition() -> str:
    touch_every_metric()
    body, _ = metrics.render_latest()
    return body.decode()


@pytest.fixture
def prometheus_at(
    tmp_path: Path,
) -> Callable[..., AbstractAsyncContextManager[Prometheus]]:
    """`async with prometheus_at(url, rule_files=[...]) as prom:` scrapes url every second."""

    def start(target_url: str, **kwargs: object) -> AbstractAsyncContextManager[Prometheus]:
        return running_prometheus(target_url, tmp_path / "prometheus", **kwargs)  # type: ignore[arg-type]

    return start
