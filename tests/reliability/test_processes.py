"""Two `baygate serve` processes on one port (SO_REUSEPORT) and one database: connections
are spread across both, and every transfer is delivered, committed and credited once, as
with one process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from gateway.traffic import TrafficPlan, run_day
from tests.reliability.served import served_gateway

MESSAGES = 240
QUIET_TIMEOUT_S = 90.0
MESSAGES_ROUTE = "/v1/schemes/{scheme}/messages"


async def _messages_handled(process_url: str) -> float:
    """Scheme messages this one process answered, from its own /metrics."""
    async with aiohttp.ClientSession() as s, s.get(process_url + "/metrics") as r:
        text = await r.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "baygate_http_request_duration_seconds_count"
        and sample.labels.get("route") == MESSAGES_ROUTE
    )


async def _quiet(conn: asyncpg.Connection) -> None:
    deadline = time.monotonic() + QUIET_TIMEOUT_S
    while await conn.fetchval(
        """SELECT (SELECT count(*) FROM transfers
                    WHERE state IN ('RECEIVED', 'RESERVED', 'QUEUED'))
                + (SELECT count(*) FROM outbox WHERE done_at IS NULL)"""
    ):
        assert time.monotonic() < deadline, "transfers or deliveries still in flight"
        await asyncio.sleep(0.1)


async def test_two_processes_share_the_port_and_each_transfer_is_credited_once(
    db_dsn: str, tmp_path: Path
) -> None:
    async with served_gateway(db_dsn, tmp_path / "data", processes=2) as g:
        plan = TrafficPlan(seed=11, tx_per_msg_max=2, tag="PROC")
        day = await run_day(g.base_url, g.directory, g.keys, plan, rate_per_s=300,
                            count=MESSAGES, concurrency=16)  # fmt: skip
        assert not [s for s in day.http if s >= 500], day.http
        assert day.outcomes["ACSP"] > 0, day.outcomes

        handled = [await _messages_handled(url) for url in g.process_urls]
        assert all(n > 0 for n in handled), handled  # the kernel gave each process connections
        assert sum(handled) == day.messages

        conn = await asyncpg.connect(db_dsn)
        try:
            await _quiet(conn)
            states = dict(await conn.fetch("SELECT state, count(*) FROM transfers GROUP BY 1"))
            assert states.get("COMMITTED", 0) > 0, states
            rows = await conn.fetch(
                """SELECT receiver_id, coalesce(creditor_currency, currency) AS ccy,
                          sum(coalesce(creditor_amount_minor, amount_minor))::bigint AS minor
                     FROM transfers WHERE state = 'COMMITTED' GROUP BY 1, 2"""
            )
            unbalanced = await conn.fetch(
                """SELECT currency FROM clearing_ledger_entries
                    GROUP BY currency HAVING sum(amount) <> 0"""
            )
        finally:
            await conn.close()
        committed: dict[str, dict[str, int]] = {}
        for r in rows:
            committed.setdefault(r["receiver_id"], {})[r["ccy"]] = int(r["minor"])
        books = {pid: b for by_pid in g.sims.summary().values() for pid, b in by_pid.items()}
        held = {
            pid: cast(dict[str, int], b["credited_minor"])
            for pid, b in books.items()
            if b["credited_minor"]
        }
        assert held == committed  # credited once each: none doubled by the two workers
        assert not unbalanced
