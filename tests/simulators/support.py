"""Shared helpers: the sample directory and keys, a settable clock, a signing "gateway"."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from adapters.registry import get_adapter
from clearing.model import Account, Agent, Party, PartyId, PartyIdType, Transfer
from clearing.money import Money
from gateway.auth import load_private_key, sign_request
from gateway.directory import load_file
from gateway.sim_state import SimRules, SimulatorState
from gateway.simulator import SIM_STATE, create_simulator_app

REPO = Path(__file__).resolve().parents[2]
DIRECTORY = load_file(REPO / "examples" / "directory.yaml")
KEYS_DIR = REPO / "examples" / "demo-keys"
GATEWAY_KEY = load_private_key(KEYS_DIR / "gateway.pem")
NOW = 1_800_000_000.0  # a fixed instant: nothing here reads the wall clock
WHEN = dt.datetime.fromtimestamp(NOW, tz=dt.UTC)
BY_ID = {p.id: p for p in DIRECTORY.participants}
DEBTOR_ACCOUNTS = {
    "hk-fps": "801000777001",
    "cn-ibps": "6222020200998877665",
    "mo-fps": "301000777001",
}


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def providers(scheme: str) -> dict[str, object]:
    return {p.id: p for p in DIRECTORY.participants if p.scheme == scheme and p.role == "provider"}


def agent_of(pid: str) -> Agent:
    p = BY_ID[pid]
    return Agent(p.clearing_system, p.clearing_code, p.name)


def delivery(
    to: str,
    *,
    e2e: str = "E2E-0001",
    account: str = "801000000001",
    amount: Money | None = None,
    creditor_amount: Money | None = None,
    sender: str = "cn-pearl",
    creditor_agent: Agent | None = None,
    gateway_id: str | None = None,
) -> Transfer:
    """A transfer as the gateway delivers it to participant `to`."""
    if to.startswith("cn-") and account.startswith("801"):
        account = "6222020200112233445"
    return Transfer(
        msg_id="GWMSG0001",
        id=gateway_id,
        end_to_end_id=e2e,
        tx_id="TX" + e2e,
        source_scheme=BY_ID[sender].scheme,
        destination_scheme=BY_ID[to].scheme,
        amount=amount or Money(12_345, "CNY"),
        creditor_amount=creditor_amount,
        debtor=Party("陈伟", PartyId(PartyIdType.CN_RIC, "440104199003071239")),
        debtor_account=Account(DEBTOR_ACCOUNTS[BY_ID[sender].scheme]),
        debtor_agent=agent_of(sender),
        creditor=Party("CHAN Tai Man"),
        creditor_account=Account(account),
        creditor_agent=creditor_agent or agent_of(to),
        charge_bearer="SLEV",
        created_at=WHEN,
    )


def encode_delivery(t: Transfer, msg_id: str = "GWMSG0001") -> bytes:
    scheme = t.destination_scheme
    assert scheme is not None
    return get_adapter(scheme).encode_transfer(t, msg_id=msg_id, created_at=WHEN)


@dataclass
class Reply:
    status: int
    body: bytes


class Gateway:
    """Plays the gateway against one simulator app: signs as "baygate" and POSTs."""

    def __init__(self, client: TestClient, clock: Clock, key_id: str = "baygate") -> None:
        self.client, self.clock, self.key_id = client, clock, key_id
        self.key = GATEWAY_KEY
        self.nonce = secrets.token_urlsafe(12)

    async def post(self, path: str, body: bytes, *, sign: bool = True, tick: bool = True) -> Reply:
        """POST `body`; each request is signed one second later than the previous one, so a
        redelivery carries a fresh signature as the gateway's retries do."""
        if tick:
            self.clock.now += 1
            self.nonce = secrets.token_urlsafe(12)
        headers = {"Content-Type": "application/xml"}
        if sign:
            # Without a tick the same created time and nonce give the very same signature: a replay.
            headers = sign_request(
                "POST", path, headers, body, self.key_id, self.key, created=self.clock.now,
                nonce=self.nonce,
            )
        async with self.client.post(path, data=body, headers=headers) as resp:
            return Reply(resp.status, await resp.read())

    async def deliver(self, to: str, t: Transfer, msg_id: str = "GWMSG0001") -> Reply:
        return await self.post(f"/providers/{to}/transfers", encode_delivery(t, msg_id))


@asynccontextmanager
async def started(
    scheme: str, rules: SimRules | None = None, clock: Clock | None = None
) -> AsyncIterator[tuple[SimulatorState, Gateway]]:
    """A simulator for every provider of `scheme` in the sample directory, and its gateway."""
    clock = clock or Clock()
    app = create_simulator_app(
        scheme, providers(scheme), GATEWAY_KEY.public_key(), rules, clock=clock
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield app[SIM_STATE], Gateway(client, clock)
    finally:
        await client.close()
