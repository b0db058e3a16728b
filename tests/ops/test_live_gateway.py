"""The running gateway under traffic serves what operators' rules and dashboards query.

One stack for the module: traffic (everyday payments and the deliberate bad cases), a pair
of payments queued and released by the liquidity-saving mechanism, a window close, more
traffic. Then its live /metrics is checked against the names the alert rules and the Grafana
dashboard use and against the database it describes, and a real Prometheus scrapes it under
traffic. A scheduled close runs on a stack of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from adapters.registry import get_adapter
from clearing.model import Proxy, ProxyType, TxStatus
from clearing.money import Money
from gateway import sim_messages as sm
from gateway.client import BaygateClient
from gateway.harness import Stack
from gateway.settlement_service import wait_for_files
from gateway.traffic import DaySummary
from tests.ops.conftest import DASHBOARDS, RULE_FILE
from tests.ops.live import (
    live_stack,
    operator,
    scrape,
    send_traffic,
    wait_for_snapshot_after,
    wait_quiet,
)
from tests.ops.prom import running_prometheus
from tests.ops.promql import (
    SYNTHETIC,
    dashboard_exprs,
    exposition_names,
    metric_names,
    recorded_names,
    rule_exprs,
)
from tests.ops.test_live_prometheus import evaluated_rules


@dataclass
class Live:
    stack: Stack
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float]  # counters before the traffic
    summaries: list[DaySummary]
    closed_window: int


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(values: dict, name: str, **match: str) -> float:
    return sum(
        v for (n, labels), v in values.items()
        if n == name and all(dict(labels).get(k) == want for k, want in match.items())
    )  # fmt: skip


# Proxies of hk-801's and hk-802's customers in examples/directory.yaml.
PAYEE_AT = {"hk-801": "+852-91234567", "hk-802": "+852-62345678"}


async def _send_one(
    stack: Stack, sender_id: str, receiver_id: str, minor: int, e2e: str
) -> TxStatus:
    sender = sm.as_sender(stack.participant(sender_id))
    payee = sm.Payee(
        "?",
        "?",
        sender.agent,
        "CHAN Siu Ming",
        proxy=Proxy(ProxyType("MOBN"), PAYEE_AT[receiver_id]),
    )
    t = sm.make_transfer(sender, payee, random.Random(e2e), msg_id="M" + e2e, e2e=e2e,
                         created_at=dt.datetime.now(dt.UTC), amount=Money(minor, "HKD"))  # fmt: skip
    async with BaygateClient(stack.base_url, sender_id, stack.keys[sender_id]) as client:
        reply = await client.post_message(
            sender.scheme, sm.encode(sender.scheme, [t], t.msg_id, t.created_at)
        )
    assert reply.status == 200, reply.body[:300]
    [report] = get_adapter(sender.scheme).decode_status_reply(reply.body)
    return report.status


async def _set_limits(stack: Stack, pid: str, cap: int, cover: int, saving: bool) -> None:
    body = {"net_debit_cap": Money(cap, "HKD").format(), "liquidity_cover": Money(cover, "HKD").format(),
            "liquidity_saving": saving}  # fmt: skip
    status, _, text = await operator(stack, "PUT", f"/v1/operator/limits/{pid}/HKD", json=body)
    assert status == 200, text


async def _wait_metric(stack: Stack, name: str, labels: dict[str, str], want: float) -> None:
    key = (name, tuple(sorted(labels.items())))
    deadline = time.monotonic() + 30
    while samples(await scrape(stack)).get(key) != want:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {want}"
        await asyncio.sleep(0.1)


async def offsetting_pair_through_the_lsm(stack: Stack) -> None:
    """hk-801 and hk-802 in liquidity-saving mode with 100.00 HKD of headroom, then two
    payments to each other above it: both queue (PDNG), and the resolver releases them
    together because they offset. The limits are restored afterwards."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch(
            """SELECT p.participant_id, p.net, p.reserved, l.net_debit_cap, l.liquidity_cover,
                      l.liquidity_saving
                 FROM clearing_positions p JOIN participant_limits l USING (participant_id, currency)
                WHERE p.currency = 'HKD' AND p.participant_id = ANY($1)""",
            list(PAYEE_AT),
        )
    finally:
        await conn.close()
    tight = {r["participant_id"]: max(r["net"] + r["reserved"], 0) + 10_000 for r in rows}
    headroom = max(tight[r["participant_id"]] - r["net"] - r["reserved"] for r in rows)
    for pid, cap in tight.items():
        await _set_limits(stack, pid, cap, cap, True)
    amount = headroom + 40_000
    assert await _send_one(stack, "hk-801", "hk-802", amount, "OPSLSMA1") == TxStatus.PDNG
    await _wait_metric(stack, "baygate_lsm_queue_depth", {"currency": "HKD"}, 1)
    await _wait_metric(stack, "baygate_lsm_participant_queue_depth", {"participant": "hk-801", "currency": "HKD"}, 1)
    # 50.00 less back: both fit together, hk-801 using 50.00 of liquidity for the pair.
    assert await _send_one(stack, "hk-802", "hk-801", amount - 5_000, "OPSLSMB1") == TxStatus.PDNG
    await wait_quiet(stack)
    for r in rows:
        await _set_limits(stack, r["participant_id"], r["net_debit_cap"], r["liquidity_cover"],
                          r["liquidity_saving"])  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(
    pg_dsn: str, template_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    async with live_stack(pg_dsn, tmp_path_factory.mktemp("live")) as stack:
        before = samples(await scrape(stack))
        first = await send_traffic(stack, 60, seed=21)
        assert not [s for s in first.http if s >= 500], first.http
        await wait_quiet(stack)
        await offsetting_pair_through_the_lsm(stack)
        await wait_quiet(stack)
        status, _, body = await operator(stack, "POST", "/v1/operator/windows/close")
        assert status == 200, body
        window = json.loads(body)["window_id"]
        await wait_for_files(stack.settings.data_dir, window, timeout_s=60)
        second = await send_traffic(stack, 30, seed=22, shares={})
        await wait_quiet(stack)
        await wait_for_snapshot_after(time.time())
        yield Live(stack, before, [first, second], window)


def _names_used() -> dict[str, set[str]]:
    recorded = recorded_names(RULE_FILE)
    exprs = [*rule_exprs(RULE_FILE), *(e for d in DASHBOARDS for e in dashboard_exprs(d))]
    used: dict[str, set[str]] = {}
    for where, expr in exprs:
        for name in metric_names(expr) - SYNTHETIC - recorded:
            used.setdefault(name, set()).add(where)
    return used


# Served once its event has happened.
NOT_RECORDED = {"baygate_corridor_limit_hits_total"}


async def test_every_metric_the_rules_and_dashboards_use_is_served_live(live: Live) -> None:
    served = exposition_names(await scrape(live.stack))
    used = _names_used()
    assert len(used) >= 20
    for name in NOT_RECORDED:
        used.pop(name, None)
    missing = {name: sorted(where) for name, where in used.items() if name not in served}
    assert missing == {}


async def test_live_state_gauges_agree_with_the_database(live: Live) -> None:
    await wait_for_snapshot_after(time.time())
    values = samples(await scrape(live.stack))
    conn = await asyncpg.connect(live.stack.dsn)
    try:
        open_id, opened_at = await conn.fetchrow(
            "SELECT w.id, w.opened_at FROM clearing_window_current c JOIN clearing_windows w ON w.id = c.window_id"
        )
        in_window = await conn.fetchval(
            "SELECT count(*) FROM clearing_transfers WHERE window_id = $1 AND state = 'COMMITTED'",
            open_id,
        )
        positions = await conn.fetch(
            "SELECT participant_id, currency, net, reserved FROM clearing_positions"
        )
        settlements = dict(
            await conn.fetch("SELECT state, count(*) FROM clearing_settlements GROUP BY state")
        )
        acsc = await conn.fetchval("SELECT count(*) FROM transfers WHERE tx_status = 'ACSC'")
        outbox = await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL")
    finally:
        await conn.close()
    assert open_id == live.closed_window + 1
    assert in_window > 0
    assert values[("baygate_window_open_transfers", ())] == in_window
    assert (
        0
        <= values[("baygate_window_open_age_seconds", ())]
        < time.time() - opened_at.timestamp() + 1
    )
    assert values[("baygate_window_schedule_seconds", ())] == 86_400  # closed by hand only
    for r in positions:
        labels = (("currency", r["currency"]), ("participant", r["participant_id"]))
        assert values[("baygate_position_minor", labels)] == r["net"]
        assert values[("baygate_reserved_minor", labels)] == r["reserved"] == 0  # nothing in flight
    for state in ("PENDING_SETTLEMENT", "SETTLED", "ABORTED"):
        assert values[("baygate_settlements", (("state", state),))] == settlements.get(state, 0)
    assert sum(settlements.values()) == 1
    assert values[("baygate_settlements_overdue", ())] == 0
    assert values[("baygate_outbox_depth", ())] == outbox == 0
    # Counters are per process and this process ran other stacks: compare what this one added.
    added = total(values, "baygate_transfers_total", status="ACSC") - total(
        live.before, "baygate_transfers_total", status="ACSC"
    )
    assert added == acsc > 0


async def test_prometheus_scrapes_the_running_gateway_under_traffic(live: Live, tmp_path) -> None:
    stack = live.stack
    async with running_prometheus(
        f"{stack.base_url}/metrics", tmp_path / "prometheus", rule_files=[RULE_FILE]
    ) as prom:
        traffic = asyncio.create_task(send_traffic(stack, 40, seed=23, shares={}))
        try:
            assert await prom.query_value('up{job="baygate"}') == 1
            await prom.wait_for('sum(baygate_transfers_total{status="ACSC"}) > 0')
            build = await prom.query("baygate_build_info")
            assert [s["value"][1] for s in build] == ["1"] and build[0]["metric"]["version"]
            ready = await prom.query_value("baygate_db_ready")
            assert ready == 1
            by_status = await prom.query("sum by (status) (baygate_transfers_total)")
            assert {s["metric"]["status"] for s in by_status} >= {"ACSC", "RJCT"}
            assert await prom.query_value('sum(baygate_transfers_total{status="RJCT"})') > 0
            # Double entry: every currency's positions sum to zero across participants.
            sums = await prom.query("sum by (currency) (baygate_position_minor)")
            assert {s["metric"]["currency"] for s in sums} >= {"HKD", "CNY", "MOP"}
            assert all(float(s["value"][1]) == 0 for s in sums), sums
            caps = await prom.query("baygate_net_debit_cap_minor > 0")
            assert len(caps) >= 6
            assert await prom.query_value("baygate_outbox_depth") >= 0
            assert await prom.query_value("baygate_window_open_transfers") > 0
            assert await prom.query_value('baygate_settlements{state="PENDING_SETTLEMENT"}') == 1
            assert await prom.query_value("time() - baygate_snapshot_timestamp_seconds") < 60
        finally:
            summary = await traffic
        assert summary.http.get(200) == summary.messages
        rules = await evaluated_rules(prom)
        assert rules and all(r["health"] == "ok" for r in rules), [
            (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
        ]


async def test_corridor_limit_refusals_are_counted_by_corridor_and_rule(live: Live) -> None:
    # Northbound Payment Connect allows HKD 10,000 a day per person: one payment over it.
    over = {
        "msg_id": "MOVERLIMIT1", "end_to_end_id": "EOVERLIMIT1", "amount": "10000.01", "currency": "HKD",
        "debtor": {"name": "CHAN Tai Man", "id_type": "HKID", "id_value": "A1234563"},
        "debtor_account": {"number": "801123456700"}, "creditor": {"name": "LI Wei"},
        "creditor_account": {"proxy": {"type": "MOBN", "value": "+86-13800138000"}},
    }
    async with BaygateClient(live.stack.base_url, "hk-801", live.stack.keys["hk-801"]) as c:
        r = await c.post_json("/v1/transfers", over)
    assert (r.body["status"], r.body["reason"]) == ("RJCT", "AM02"), r.body
    values = samples(await scrape(live.stack))
    am02 = total(values, "baygate_rejections_total", reason="AM02") - total(
        live.before, "baygate_rejections_total", reason="AM02"
    )
    assert am02 > 0  # the traffic's over_corridor cases
    hits = total(values, "baygate_corridor_limit_hits_total") - total(
        live.before, "baygate_corridor_limit_hits_total"
    )
    assert hits == am02


async def test_lsm_release_is_served_live(live: Live) -> None:
    values = samples(await scrape(live.stack))
    released = total(values, "baygate_lsm_released_total", currency="HKD") - total(
        live.before, "baygate_lsm_released_total", currency="HKD"
    )
    assert released == 2
    assert values[("baygate_lsm_queue_depth", (("currency", "HKD"),))] == 0
    assert values[("baygate_lsm_participant_queue_depth", (("currency", "HKD"), ("participant", "hk-801")))] == 0
    assert values[("baygate_lsm_liquidity_efficiency_ratio", (("currency", "HKD"),))] > 0


# Last: a second stack in this process publishes its own state gauges over the module's.
async def test_a_scheduled_close_closes_windows_and_writes_their_files(
    pg_dsn: str, template_dsn: str, tmp_path
) -> None:
    async with live_stack(pg_dsn, tmp_path / "scheduled", window_close_interval_s=2) as stack:
        summary = await send_traffic(stack, 10, seed=24, shares={})
        assert summary.http.get(200) == summary.messages
        conn = await asyncpg.connect(stack.dsn)
        try:
            deadline = time.monotonic() + 60
            while True:  # the window holding the traffic is closed by the scheduler
                row = await conn.fetchrow(
                    """SELECT w.id FROM clearing_windows w
                        WHERE w.closed_by = 'scheduler' AND EXISTS (
                              SELECT 1 FROM clearing_window_totals t WHERE t.window_id = w.id)"""
                )
                if row is not None or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert row is not None
            closers = {
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT closed_by FROM clearing_windows WHERE closed_by IS NOT NULL"
                )
            }
        finally:
            await conn.close()
        assert closers == {"scheduler"}
        folder = await wait_for_files(stack.settings.data_dir, row["id"], timeout_s=60)
        assert json.loads((folder / "manifest.json").read_bytes())["window_id"] == str(row["id"])
        # (The schedule gauge itself is covered by tests/ops/test_collector.py: collectors of
        # other stacks in this process share the registry.)
