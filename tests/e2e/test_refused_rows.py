"""A transfer the clearing refuses inside an acceptance batch is stored refused: rows go in
as reserved (the usual outcome) and the decision rewrites the ones it refused, so a replay
and a read must see the refusal, never the reservation the row was inserted with."""

from __future__ import annotations

import uuid

import asyncpg

from gateway.client import BaygateClient
from gateway.harness import Stack
from tests.e2e.test_api import _operator, _transfer


async def test_a_refused_transfer_is_stored_refused_and_replays_refused(
    stack: Stack, db_dsn: str
) -> None:
    status, _ = await _operator(
        stack,
        "PUT",
        "/v1/operator/limits/hk-801/HKD",
        {"net_debit_cap": "100.00", "liquidity_cover": "100.00"},
    )
    assert status == 200
    refused, fits = "R" + uuid.uuid4().hex[:20], "F" + uuid.uuid4().hex[:20]
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        r = await c.post_json("/v1/transfers", _transfer(refused, amount="150.00"))
        assert (r.body["status"], r.body["reason"]) == ("RJCT", "AM04"), r.body
        ok = await c.post_json("/v1/transfers", _transfer(fits, amount="50.00"))
        assert ok.body["status"] == "ACSP", ok.body
        again = await c.post_json("/v1/transfers", _transfer(refused, amount="150.00"))
        assert again.body["replay"] and (again.body["status"], again.body["reason"]) == (
            "RJCT",
            "AM04",
        )
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = {
            r["end_to_end_id"]: r
            for r in await conn.fetch(
                "SELECT t.end_to_end_id, t.state, t.tx_status, t.reason, c.id AS cleared,"
                " (SELECT count(*) FROM outbox o WHERE o.transfer_id = t.id) AS outbox"
                " FROM transfers t LEFT JOIN clearing_transfers c ON c.id = t.id"
                " WHERE t.end_to_end_id = ANY($1::text[])",
                [refused, fits],
            )
        }
    finally:
        await conn.close()
    assert (rows[refused]["state"], rows[refused]["tx_status"], rows[refused]["reason"]) == (
        "REJECTED",
        "RJCT",
        "AM04",
    )
    assert rows[refused]["cleared"] is None and rows[refused]["outbox"] == 0
    assert rows[fits]["state"] in ("RESERVED", "COMMITTED") and rows[fits]["cleared"] is not None
