"""The JSON API and operator endpoints over real HTTP: idempotency, quotes, authorization."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from gateway.client import BaygateClient
from gateway.harness import Stack


def _transfer(e2e: str, amount: str = "120.50", currency: str = "HKD", **extra: Any) -> dict[str, Any]:
    body = {
        "msg_id": "MSG" + e2e, "end_to_end_id": e2e, "amount": amount, "currency": currency,
        "debtor": {"name": "CHAN Tai Man", "id_type": "HKID", "id_value": "A1234563"},
        "debtor_account": {"number": "801123456700"},
        "creditor": {"name": "WONG Siu Ming"},
        "creditor_account": {"proxy": {"type": "MOBN", "value": "+852-62345678"}},
    }
    body.update(extra)
    return body


async def _operator(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    async with aiohttp.ClientSession() as s, s.request(method, stack.base_url + path, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_json_transfer_replay_and_duplicate(stack: Stack) -> None:
    e2e = "J" + uuid.uuid4().hex[:20]
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        first = await c.post_json("/v1/transfers", _transfer(e2e))
        assert first.status == 201 and first.body["status"] == "ACSP", first.body
        again = await c.post_json("/v1/transfers", _transfer(e2e))
        assert again.status == 200 and again.body["replay"] and again.body["id"] == first.body["id"]
        other = await c.post_json("/v1/transfers", _transfer(e2e, amount="999.00"))
        assert other.status == 409 and other.body["reason"] == "DUPL"
        detail = await c.get_json(f"/v1/transfers/{first.body['id']}")
        assert detail.status == 200 and detail.body["receiver"] == "hk-802"
    # A participant that neither sent nor received it cannot read it.
    async with BaygateClient(stack.base_url, "hk-803", stack.keys["hk-803"]) as c:
        assert (await c.get_json(f"/v1/transfers/{first.body['id']}")).status == 404


async def test_quote_locks_the_rate_for_a_cross_currency_transfer(stack: Stack) -> None:
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        q = await c.post_json("/v1/quotes", {"source_currency": "HKD", "target_currency": "CNY"})
        assert q.status == 201, q.body
        e2e = "Q" + uuid.uuid4().hex[:20]
        body = _transfer(e2e, amount="1000.00", quote_id=q.body["id"],
                         creditor_account={"proxy": {"type": "MOBN", "value": "+86-13800138000"}})
        r = await c.post_json("/v1/transfers", body)
        assert r.status == 201 and r.body["status"] == "ACSP", r.body
        detail = (await c.get_json(f"/v1/transfers/{r.body['id']}")).body
    assert detail["creditor_currency"] == "CNY"
    # 1000.00 HKD at the quoted client rate, rounded half up to the fen.
    from decimal import ROUND_HALF_UP, Decimal

    expected = (Decimal("1000.00") * Decimal(q.body["rate"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(detail["creditor_amount"]) == expected
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        bad = await c.post_json("/v1/transfers", _transfer("U" + uuid.uuid4().hex[:20], quote_id="no-such-quote",
                                creditor_account={"proxy": {"type": "MOBN", "value": "+86-13800138000"}}))
    assert bad.body["status"] == "RJCT"


async def test_unknown_proxy_and_unknown_agent_are_business_rejections(stack: Stack) -> None:
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        r = await c.post_json("/v1/transfers", _transfer("P" + uuid.uuid4().hex[:20],
                              creditor_account={"proxy": {"type": "MOBN", "value": "+852-99999999"}}))
        assert (r.status, r.body["status"], r.body["reason"]) == (201, "RJCT", "BE23")
        r = await c.post_json("/v1/transfers", _transfer("A" + uuid.uuid4().hex[:20],
                              creditor_account={"number": "123456789"},
                              creditor_agent={"clearing_system": "HKNCC", "member_id": "555"}))
        assert (r.body["status"], r.body["reason"]) == ("RJCT", "RC10")


async def test_operator_suspends_and_caps(stack: Stack) -> None:
    status, _ = await _operator(stack, "PATCH", "/v1/operator/participants/hk-803", {"status": "suspended"})
    assert status == 200
    async with BaygateClient(stack.base_url, "hk-803", stack.keys["hk-803"]) as c:
        assert (await c.get_json("/v1/participants/me")).status == 403
    await _operator(stack, "PATCH", "/v1/operator/participants/hk-803", {"status": "active"})
    status, view = await _operator(stack, "PUT", "/v1/operator/limits/hk-801/HKD",
                                   {"net_debit_cap": "100.00", "liquidity_cover": "100.00"})
    assert status == 200 and view["net_debit_cap"] == 10000
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        r = await c.post_json("/v1/transfers", _transfer("C" + uuid.uuid4().hex[:20], amount="150.00"))
        assert (r.body["status"], r.body["reason"]) == ("RJCT", "AM04")
        me = await c.get_json("/v1/positions")
    hkd = next(p for p in me.body["positions"] if p["currency"] == "HKD")
    assert hkd["net_debit_cap"] == "100.00"
    # Operator endpoints refuse a provider's signature and a wrong token.
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        assert (await c.post_json("/v1/operator/windows/close", {})).status == 401
    async with aiohttp.ClientSession() as s, s.post(stack.base_url + "/v1/operator/windows/close",
                                                     headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401


async def test_close_window_nets_and_openapi_is_served(stack: Stack) -> None:
    async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
        r = await c.post_json("/v1/transfers", _transfer("W" + uuid.uuid4().hex[:20]))
        assert r.body["status"] == "ACSP"
    import asyncio

    for _ in range(100):  # wait for the receiver's acceptance to commit it
        async with BaygateClient(stack.base_url, "hk-801", stack.keys["hk-801"]) as c:
            if (await c.get_json(f"/v1/transfers/{r.body['id']}")).body["status"] == "ACSC":
                break
        await asyncio.sleep(0.1)
    status, close = await _operator(stack, "POST", "/v1/operator/windows/close")
    assert status == 200, close
    hkd = next(n for n in close["netting"] if n["currency"] == "HKD")
    assert sum(line["credits"] - line["debits"] for line in hkd["lines"]) == 0
    assert close["audit_chain_head"]
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.base_url + "/openapi.json") as r:
            spec = await r.json()
            assert "/v1/schemes/{scheme}/messages" in spec["paths"] and "TransferIn" in spec["components"]["schemas"]
        async with s.get(stack.base_url + "/docs") as r:
            assert r.status == 200 and "Baygate API" in await r.text()
