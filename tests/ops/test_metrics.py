"""gateway.metrics: what an operator reads at /metrics after the gateway records events."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from clearing.model import SCHEMES, TransferState, TxStatus
from clearing.reasons import Reason
from gateway import metrics
from tests.ops.conftest import touch_every_metric

REGISTRY = metrics.REGISTRY


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def exposed_samples() -> dict[tuple[str, frozenset], float]:
    body, _ = metrics.render_latest()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


junk = st.sampled_from(["", "HK-FPS", "hk_fps", "swift", "x" * 200, "DROP TABLE"])
schemes = st.one_of(st.sampled_from(SCHEMES), junk)
statuses = st.one_of(
    st.sampled_from([s.value for s in TransferState] + [s.value for s in TxStatus]), junk
)
ISO_STATUS_OF_STATE = {
    "COMMITTED": "ACSC",
    "RESERVED": "ACSP",
    "RECEIVED": "PDNG",
    "QUEUED": "PDNG",
}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(schemes, st.one_of(st.none(), schemes), statuses), max_size=30))
def test_transfer_counts_match_a_reference_count_with_unknown_values_folded(events):
    """Every final status is counted once under its corridor, internal states under their ISO
    status; unknown label values read 'other'."""

    def fold(value, allowed):
        return value if value in allowed else "other"

    def iso_status(value):
        if value in {s.value for s in TransferState}:
            return ISO_STATUS_OF_STATE.get(value, "RJCT")
        return fold(value, {s.value for s in TxStatus})

    expected = Counter(
        (
            fold(src, SCHEMES),
            fold(dst or "unknown", (*SCHEMES, "unknown")),
            iso_status(status),
        )
        for src, dst, status in events
    )
    keys = set(expected) | {("hk-fps", "cn-ibps", "ACSC")}
    before = {k: sample("baygate_transfers_total", **_tl(k)) for k in keys}
    for src, dst, status in events:
        metrics.record_transfer(src, dst, status)
    for k in keys:
        assert sample("baygate_transfers_total", **_tl(k)) - before[k] == expected.get(k, 0)


def _tl(key: tuple[str, str, str]) -> dict[str, str]:
    return dict(zip(("source_scheme", "destination_scheme", "status"), key, strict=True))


def test_rejections_are_counted_by_reason_code():
    before = sample("baygate_rejections_total", reason="AM04", source_scheme="cn-ibps")
    other = sample("baygate_rejections_total", reason="other", source_scheme="cn-ibps")
    metrics.record_rejection(Reason.AM04, "cn-ibps")
    metrics.record_rejection("AM04", "cn-ibps")
    metrics.record_rejection("ZZ99", "cn-ibps")
    assert sample("baygate_rejections_total", reason="AM04", source_scheme="cn-ibps") == before + 2
    assert sample("baygate_rejections_total", reason="other", source_scheme="cn-ibps") == other + 1


def test_delivery_attempts_retries_and_failures_feed_the_failure_ratio():
    p = "mo-test-delivery"
    metrics.record_delivery_attempt(p, retry=False, ok=False)
    metrics.record_delivery_attempt(p, retry=True, ok=False)
    metrics.record_delivery_attempt(p, retry=True, ok=True)
    assert sample("baygate_delivery_attempts_total", participant=p) == 3
    assert sample("baygate_delivery_retries_total", participant=p) == 2
    assert sample("baygate_delivery_failures_total", participant=p) == 2


def test_participant_values_that_look_like_person_data_are_not_exported():
    before = sample("baygate_delivery_attempts_total", participant="other")
    for bad in ("Chan Tai Man", "+852 9123 4567", "a" * 65, "", "x\ny"):
        metrics.record_delivery_attempt(bad, retry=False, ok=True)
    assert sample("baygate_delivery_attempts_total", participant="other") == before + 5
    body = metrics.render_latest()[0].decode()
    labels = {v for f in text_string_to_metric_families(body) for s in f.samples for v in s.labels.values()}
    assert not any("Chan Tai Man" in v or "9123" in v for v in labels)  # sample values may hold digits


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="abc:._-19 ", max_size=6), max_size=40))
def test_open_label_never_exceeds_its_distinct_maximum(values):
    guard = metrics._Open(r"[a-z0-9][a-z0-9:._-]{0,63}", distinct_max=5)
    out = [guard(v) for v in values]
    assert len(set(out) - {"other"}) <= 5
    for value, label in zip(values, out, strict=True):
        assert label in (value, "other")
    first_valid = list(dict.fromkeys(v for v in values if guard._re.fullmatch(v)))[:5]
    assert {label for label in out if label != "other"} == set(first_valid)


def test_latency_histograms_have_the_one_second_objective_as_a_bucket_edge(exposition):
    """The p99 alerts compare to 1 s and 5 s: exact only when those are bucket edges."""
    edges: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.type == "histogram" and family.name.endswith("_latency_seconds"):
            edges[family.name] = {s.labels["le"] for s in family.samples if "le" in s.labels}
    assert set(edges) == {"baygate_stage_latency_seconds", "baygate_e2e_latency_seconds"}
    assert all({"1.0", "+Inf"} <= les for les in edges.values())
    assert "5.0" in edges["baygate_e2e_latency_seconds"]


@given(
    position=st.integers(-(10**15), 10**15),
    reserved=st.integers(0, 10**15),
    cap=st.integers(0, 10**15),
)
def test_cap_utilisation_is_exposure_over_cap(position, reserved, cap):
    row = metrics.PositionRow("hk-801", "HKD", position, reserved, cap, 0)
    exposure = max(position + reserved, 0)
    ratio = row.cap_utilisation_ratio
    if cap:
        assert ratio == exposure / cap
        assert (ratio > 0.95) == (exposure * 100 > cap * 95)
    else:
        assert ratio == (math.inf if exposure else 0.0)


def test_snapshot_replaces_positions_and_keeps_parts_not_given():
    row = metrics.PositionRow
    metrics.set_snapshot(
        metrics.Snapshot(
            positions=(row("snap-a", "HKD", 90, 6, 100, 0), row("snap-b", "CNY", 1, 0, 100, 0)),
            outbox=metrics.OutboxRow(depth=7, oldest_age_s=42.0),
            taken_at_s=1000.0,
        )
    )
    got = exposed_samples()
    key = (
        "baygate_cap_utilisation_ratio",
        frozenset({("participant", "snap-a"), ("currency", "HKD")}),
    )
    assert got[key] == 0.96
    metrics.set_snapshot(
        metrics.Snapshot(positions=(row("snap-b", "CNY", 2, 0, 100, 0),), taken_at_s=1001.0)
    )
    got = exposed_samples()
    assert key not in got, "a participant missing from the snapshot must stop being exported"
    assert (
        got[("baygate_position_minor", frozenset({("participant", "snap-b"), ("currency", "CNY")}))]
        == 2
    )
    assert got[("baygate_outbox_oldest_age_seconds", frozenset())] == 42.0
    assert got[("baygate_snapshot_timestamp_seconds", frozenset())] == 1001.0


position_rows = st.builds(
    metrics.PositionRow,
    participant=st.sampled_from(["dup-a", "dup-b", "dup-c", "Not An Id", ""]),
    currency=st.sampled_from(["HKD", "CNY", "XXX"]),
    position_minor=st.integers(-(10**9), 10**9),
    reserved_minor=st.integers(0, 10**9),
    net_debit_cap_minor=st.integers(0, 10**9),
    liquidity_cover_minor=st.integers(0, 10**9),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(position_rows, max_size=12))
def test_snapshot_never_exports_a_series_twice(rows):
    """Prometheus refuses a whole scrape with a duplicate series; junk rows are left out."""
    metrics.set_snapshot(metrics.Snapshot(positions=tuple(rows)))
    body = metrics.render_latest()[0].decode()
    keys = [
        (s.name, tuple(sorted(s.labels.items())))
        for f in text_string_to_metric_families(body)
        for s in f.samples
    ]
    assert len(keys) == len(set(keys))
    first: dict[tuple[str, str], metrics.PositionRow] = {}
    for r in rows:
        if r.participant.startswith("dup-") and r.currency != "XXX":
            first.setdefault((r.participant, r.currency), r)
    exported = {
        (dict(k)["participant"], dict(k)["currency"])
        for name, k in keys
        if name == "baygate_position_minor"
    }
    assert exported == set(first)
    got = exposed_samples()
    for (p, c), r in first.items():
        labels = frozenset({("participant", p), ("currency", c)})
        assert got[("baygate_position_minor", labels)] == r.position_minor


def test_settlement_states_are_all_exported_even_when_zero():
    metrics.set_snapshot(
        metrics.Snapshot(settlements=metrics.SettlementRow({"SETTLING": 2}, overdue=1))
    )
    got = exposed_samples()
    states = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "baygate_settlements"}
    assert states == {s: (2.0 if s == "SETTLING" else 0.0) for s in metrics.SETTLEMENT_STATES}
    assert got[("baygate_settlements_overdue", frozenset())] == 1.0


def test_render_negotiates_openmetrics_and_parses():
    touch_every_metric()
    body, ctype = metrics.render_latest("application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    body, ctype = metrics.render_latest()
    assert ctype.startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"baygate_transfers", "baygate_cap_utilisation_ratio", "baygate_build_info"} <= families


def test_every_registered_metric_has_a_series_once_touched(exposition):
    """Guards the name checks: a metric added without a series here would escape them."""
    families = list(text_string_to_metric_families(exposition))
    empty = [f.name for f in families if not f.samples]
    assert empty == []
    own = [f.name for f in families if not f.name.startswith(("process_", "python_"))]
    assert all(name.startswith("baygate_") for name in own)


async def test_http_middleware_labels_route_templates_not_paths():
    async def get_transfer(request: web.Request) -> web.Response:
        if request.match_info["id"] == "boom":
            raise RuntimeError("handler bug")
        return web.json_response({"id": request.match_info["id"]})

    app = web.Application(middlewares=[metrics.http_metrics_middleware])
    app.router.add_get("/v1/test-transfers/{id}", get_transfer)
    route = "/v1/test-transfers/{id}"
    async with TestClient(TestServer(app)) as client:
        for tid in ("TX-0001", "TX-0002"):
            assert (await client.get(f"/v1/test-transfers/{tid}")).status == 200
        assert (await client.get("/v1/test-transfers/boom")).status == 500
        assert (await client.get("/no/such/path/TX-0003")).status == 404

    def count(**labels: str) -> float:
        return sample("baygate_http_request_duration_seconds_count", **labels)

    assert count(method="GET", route=route, status_class="2xx") == 2
    assert count(method="GET", route=route, status_class="5xx") == 1
    assert count(method="GET", route="/unmatched", status_class="4xx") >= 1
    assert sample("baygate_http_requests_in_flight") == 0
    body = metrics.render_latest()[0].decode()
    assert "TX-000" not in body


async def test_event_loop_lag_shows_work_that_holds_the_loop():
    """Code that holds the loop for 150 ms shows as a lag above 100 ms, and the watcher goes
    on sampling afterwards."""

    def above(le: str) -> float:
        return sample("baygate_event_loop_lag_seconds_count") - sample(
            "baygate_event_loop_lag_seconds_bucket", le=le
        )

    before_count, before_above = sample("baygate_event_loop_lag_seconds_count"), above("0.1")
    watcher = asyncio.create_task(metrics.watch_event_loop(0.005))
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.15)  # noqa: ASYNC251 - the synchronous stretch holding the loop under test
        await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert above("0.1") - before_above >= 1
    assert sample("baygate_event_loop_lag_seconds_count") - before_count >= 3
