"""Routing: find the receiving participant of a transfer, and the currency it receives.

The creditor agent is found by clearing member id, or through the proxy directory (mobile,
e-mail, FPS ID). Unknown proxy -> BE23; unknown agent -> RC10; a suspended receiver -> AG01.
The destination scheme is the receiver's scheme; the receiver gets the sender's currency
when its scheme carries it, else its scheme's home currency through FX.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from clearing.model import Account, Agent, Transfer
from clearing.reasons import Reason, Rejection
from gateway.batcher import MicroBatcher

SCHEME_CURRENCIES: dict[str, tuple[str, ...]] = {
    # home currency first
    "hk-fps": ("HKD", "CNY"),
    "cn-ibps": ("CNY",),
    "mo-fps": ("MOP", "HKD"),
}
DIRECTORY_REFRESH_S = 5.0


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    scheme: str
    clearing_system: str
    clearing_code: str
    role: str
    status: str
    endpoint_url: str | None
    public_key_ed25519: str

    @property
    def agent(self) -> Agent:
        return Agent(self.clearing_system, self.clearing_code, self.name)


@dataclass(frozen=True, slots=True)
class Route:
    receiver: Participant
    destination_scheme: str
    destination_currency: str
    creditor_account: Account
    fx_provider: Participant | None  # set when the currencies differ


class Directory:
    """In-memory copy of the participant table, refreshed on a timer and after operator changes."""

    def __init__(self) -> None:
        self.by_id: dict[str, Participant] = {}
        self.by_code: dict[tuple[str, str], Participant] = {}
        self.loaded_at = 0.0

    def load(self, rows: Iterable[Mapping[str, object]]) -> None:
        parts = [Participant(**{k: r[k] for k in Participant.__slots__}) for r in rows]  # type: ignore[arg-type]
        self.by_id = {p.id: p for p in parts}
        self.by_code = {(p.clearing_system, p.clearing_code): p for p in parts}
        self.loaded_at = time.monotonic()

    async def refresh(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        rows = await conn.fetch(
            """SELECT id, name, scheme, clearing_system, clearing_code, role, status, endpoint_url,
                      public_key_ed25519 FROM participants"""
        )
        self.load([dict(r) for r in rows])

    def stale(self) -> bool:
        return time.monotonic() - self.loaded_at > DIRECTORY_REFRESH_S

    def fx_provider(self) -> Participant | None:
        for p in self.by_id.values():
            if p.role == "fx_provider" and p.status == "active":
                return p
        return None


async def lookup_proxies(
    conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, value) -> (participant id, account number), one query for a whole batch."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        """SELECT p.type, p.value, p.participant_id, p.account_number
           FROM proxies p JOIN unnest($1::text[], $2::text[]) AS k(type, value)
             ON p.type = k.type AND p.value = k.value""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["type"], r["value"]): (r["participant_id"], r["account_number"]) for r in rows}


class ProxyResolver:
    """Proxy look-ups of concurrent submissions answered together: one query per batch.

    A submission that names its payee by proxy needs the proxy table before it can be routed;
    a query (and a pool round trip) of its own per submission costs more than the rest of a
    one-transaction submission's database work. Callers that arrive while a look-up is in
    flight are answered by the next one, as fresh as a query of their own at that moment.
    At most `batch_max` submissions share a query and `queue_depth_max` wait (BatcherFull past
    it: the caller sheds load).
    """

    def __init__(self, pool: asyncpg.Pool, *, batch_max: int = 64, queue_depth_max: int = 20_000) -> None:
        self.pool = pool
        self._batcher: MicroBatcher[frozenset[tuple[str, str]], dict[tuple[str, str], tuple[str, str]]] = (
            MicroBatcher(self._lookup_batch, batch_max=batch_max, linger_ms=0.0,
                         queue_depth_max=queue_depth_max, name="proxies")
        )

    async def lookup(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
        """(type, value) -> (participant id, account number) for the keys that are registered."""
        wanted = frozenset(keys)
        if not wanted:
            return {}
        return await self._batcher.submit(wanted)

    async def _lookup_batch(
        self, items: Sequence[frozenset[tuple[str, str]]]
    ) -> list[dict[tuple[str, str], tuple[str, str]]]:
        async with self.pool.acquire() as conn:
            found = await lookup_proxies(conn, frozenset().union(*items))
        return [{k: found[k] for k in keys if k in found} for keys in items]

    async def aclose(self) -> None:
        await self._batcher.aclose()


def route(
    t: Transfer,
    sender: Participant,
    directory: Directory,
    proxies: Mapping[tuple[str, str], tuple[str, str]],
) -> Route | Rejection:
    account = t.creditor_account
    receiver: Participant | None = None
    if t.creditor_agent is not None:
        key = (t.creditor_agent.clearing_system, t.creditor_agent.member_id)
        receiver = directory.by_code.get(key)
        if receiver is None:
            return Rejection(Reason.RC10, f"unknown creditor agent {key[0]} {key[1]}", "CdtrAgt")
    if account.proxy is not None:
        hit = proxies.get((str(account.proxy.type), account.proxy.value))
        if hit is None:
            return Rejection(Reason.BE23, f"unknown {account.proxy.type} proxy", "CdtrAcct/Prxy")
        owner = directory.by_id.get(hit[0])
        if owner is None or (receiver is not None and owner.id != receiver.id):
            return Rejection(Reason.BE23, "proxy is not registered at the creditor agent", "CdtrAcct/Prxy")
        receiver = owner
        account = Account(number=account.number or hit[1], proxy=account.proxy)
    if receiver is None:
        return Rejection(Reason.RC10, "no creditor agent and no proxy to route by", "CdtrAgt")
    if receiver.status != "active" or receiver.role != "provider":
        return Rejection(Reason.AG01, f"receiving participant {receiver.id} is not accepting transfers", "CdtrAgt")
    if receiver.id == sender.id:
        return Rejection(Reason.AG01, "on-us transfers are settled inside the bank, not cleared", "CdtrAgt")
    carried = SCHEME_CURRENCIES[receiver.scheme]
    src_ccy = t.amount.currency
    dst_ccy = src_ccy if src_ccy in carried else carried[0]
    fx = None
    if dst_ccy != src_ccy:
        fx = directory.fx_provider()
        if fx is None:
            return Rejection(Reason.AM03, f"no FX provider for {src_ccy}->{dst_ccy}", "IntrBkSttlmAmt")
    return Route(receiver, receiver.scheme, dst_ccy, account, fx)
