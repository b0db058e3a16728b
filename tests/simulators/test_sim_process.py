"""The simulators in a child process: same answers over HTTP, books readable, clean stop."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from adapters.base import StatusReport
from adapters.registry import get_adapter
from clearing.model import TxStatus
from clearing.money import Money
from clearing.reasons import Reason
from gateway.auth import sign_request
from gateway.sim_process import SimulatorProcess
from gateway.sim_state import SimRules, rules_from_dict, rules_to_dict

from .support import DIRECTORY, GATEWAY_KEY, WHEN, delivery, encode_delivery


def test_rules_survive_the_trip_to_the_child() -> None:
    rules = SimRules(
        unknown_accounts=frozenset({"801000000404"}),
        unknown_account_prefixes=("990", "977"),
        reject_reason=Reason.BE01,
        accept_status=TxStatus.ACCP,
        silent_participants=frozenset({"hk-803"}),
        http_500_ratio=0.25,
        seed=42,
    )
    assert rules_from_dict(rules_to_dict(rules)) == rules
    with pytest.raises(ValueError, match="unknown rule"):
        rules_from_dict({"reject_ration": 0.5})


async def _post(
    session: aiohttp.ClientSession, url: str, path: str, body: bytes, age_s: int = 0
) -> tuple[int, bytes]:
    """A signed POST; `age_s` back-dates the signature so that a resend signs differently."""
    headers = sign_request(
        "POST", path, {"Content-Type": "application/xml"}, body, "baygate", GATEWAY_KEY,
        created=time.time() - age_s,
    )  # fmt: skip
    async with session.post(url + path, data=body, headers=headers) as resp:
        return resp.status, await resp.read()


async def test_simulators_in_a_child_process_answer_and_show_their_books() -> None:
    ports = {"mo-fps": 0, "hk-fps": 0}
    rules = {"mo-fps": SimRules(closed_accounts=frozenset({"302000000999"}))}
    sim = SimulatorProcess(
        DIRECTORY.participants, GATEWAY_KEY.public_key(), ports=ports, rules=rules
    )
    async with sim, aiohttp.ClientSession() as session:
        assert set(sim.urls) == set(ports)
        url = sim.urls["mo-fps"]
        ok = delivery("mo-301", e2e="E-OK", account="301000123456", amount=Money(2_500, "MOP"))
        closed = delivery("mo-302", e2e="E-CLOSED", account="302000000999", amount=Money(1, "HKD"))
        for age_s, (pid, t) in enumerate((("mo-301", ok), ("mo-302", closed), ("mo-301", ok))):
            path = f"/providers/{pid}/transfers"
            assert (await _post(session, url, path, encode_delivery(t), age_s))[0] == 200
        report = StatusReport("M1", "E-SENT", "T1", TxStatus.RJCT, Reason.AC01)
        body = get_adapter("mo-fps").encode_status_report(
            [report], msg_id="S1", created_at=WHEN, original_msg_id="M1"
        )
        assert (await _post(session, url, "/providers/mo-302/status", body))[0] == 200
        books = (await sim.summary())["mo-fps"]
        assert books["mo-301"]["credited_minor"] == {"MOP": 2_500}
        assert (books["mo-301"]["distinct"], books["mo-301"]["duplicates"]) == (1, 1)
        assert books["mo-302"]["rejected"] == 1
        assert await sim.finals("mo-fps", "mo-302") == {"E-SENT": ["RJCT", "AC01"]}
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(url + "/_sim/summary")


async def test_the_child_exits_when_its_parent_end_closes() -> None:
    sim = SimulatorProcess(DIRECTORY.participants, GATEWAY_KEY.public_key(), ports={"hk-fps": 0})
    await sim.start()
    proc = sim._proc
    assert proc is not None and proc.stdin is not None
    try:
        proc.stdin.close()  # what a parent that died leaves behind
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await sim.stop()
