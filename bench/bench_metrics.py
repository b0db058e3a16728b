"""Cost of the metrics: recording one transfer's events, and rendering a scrape.

Figures (medians over `ROUNDS` rounds):
- metrics_record_transfer_us: the calls one cross-border transfer makes (accept and
  deliver stages, one delivery attempt, the final status, end-to-end latency), in
  microseconds per transfer; `metrics_counter_inc_us` beside it is one bare labelled
  counter increment of prometheus_client, so the label guards' share is visible.
- metrics_render_ms: `render_latest()` with every bounded series initialised and a state
  snapshot of `PARTICIPANTS` participants in two currencies; `metrics_exposition_bytes` is
  the size of that body.
"""

from __future__ import annotations

import statistics
import time

from prometheus_client import CollectorRegistry, Counter

from gateway import metrics

ROUNDS = 7
TRANSFERS_PER_ROUND = 2000
RENDERS_PER_ROUND = 20
PARTICIPANTS = 200


def _record_one(i: int) -> None:
    metrics.observe_stage("accept", 0.002)
    metrics.record_delivery_attempt("bench-hk-801", retry=False, ok=True)
    metrics.observe_stage("deliver", 0.015)
    metrics.record_transfer("hk-fps", "cn-ibps", "ACSC")
    metrics.observe_e2e("hk-fps", "cn-ibps", 0.02 + (i % 7) * 0.01)


def _snapshot() -> metrics.Snapshot:
    rows = tuple(
        metrics.PositionRow(f"bench-{n:03d}", ccy, 1000 * n, 50, 10**9, 10**8)
        for n in range(PARTICIPANTS)
        for ccy in ("HKD", "CNY")
    )
    return metrics.Snapshot(
        positions=rows,
        window=metrics.WindowRow(120.0, 5000, 3600.0),
        settlements=metrics.SettlementRow({"SETTLED": 10}, 0),
        outbox=metrics.OutboxRow(3, 0.4),
        db_pool=metrics.DbPoolRow(8, 2, 16),
        lsm_queue=(metrics.LsmQueueRow("HKD", 10, 10**7),),
    )


def run() -> dict[str, float | int]:
    metrics.preinitialise(f"bench-{n:03d}" for n in range(PARTICIPANTS))
    metrics.set_snapshot(_snapshot())
    bare = Counter("bench_bare_total", "bare", ("a", "b", "c"), registry=CollectorRegistry())
    record_us, bare_us, render_ms = [], [], []
    size = 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(TRANSFERS_PER_ROUND):
            _record_one(i)
        record_us.append((time.perf_counter() - started) / TRANSFERS_PER_ROUND * 1e6)

        started = time.perf_counter()
        for _ in range(TRANSFERS_PER_ROUND):
            bare.labels("hk-fps", "cn-ibps", "ACSC").inc()
        bare_us.append((time.perf_counter() - started) / TRANSFERS_PER_ROUND * 1e6)

        started = time.perf_counter()
        for _ in range(RENDERS_PER_ROUND):
            body, _ = metrics.render_latest()
        render_ms.append((time.perf_counter() - started) / RENDERS_PER_ROUND * 1e3)
        size = len(body)
    return {
        "metrics_record_transfer_us": round(statistics.median(record_us), 2),
        "metrics_counter_inc_us": round(statistics.median(bare_us), 2),
        "metrics_render_ms": round(statistics.median(render_ms), 2),
        "metrics_exposition_bytes": size,
    }


if __name__ == "__main__":
    print(run())
