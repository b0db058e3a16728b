"""Native messages as providers would send them, built from canonical transfers.

`build_message` makes one valid scheme message (pacs.008 for hk-fps / mo-fps, ibps.101 for
cn-ibps) through the sender's adapter, so what is sent is exactly what the adapters read.
Payees are addressed by proxy (mobile, e-mail, FPS ID) or by account number plus creditor
agent; payers carry the identity document their corridor rules look at (HKID, Mainland
resident ID or USCC, Macau BIR). Every draw comes from the caller's RNG.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.cn_ibps import envelope
from adapters.cn_ibps.mapping import NS_IBPS101
from adapters.identifiers import account_error, proxy_error
from adapters.pacs.mapping import NS_PACS008
from adapters.registry import get_adapter
from clearing.corridors import DEFAULT_RULES, CorridorRules
from clearing.model import SCHEMES, Account, Agent, Party, Proxy, ProxyType, Transfer
from clearing.money import Money
from gateway import sim_people as people
from gateway.auth import load_private_key
from gateway.directory import SCHEME_CLEARING_SYSTEMS
from gateway.routing import SCHEME_CURRENCIES
from gateway.sim_state import UNKNOWN_ACCOUNT_PREFIX

ID_LENGTH_MAX = 35
PACS_SCHEMES = frozenset({"hk-fps", "mo-fps"})
STAND_IN_AGENT = Agent("HKNCC", "000")  # never sent: see `encode`
_PACS_TXS = ("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf", "p:PmtId/p:EndToEndId", NS_PACS008)
_IBPS_TXS = ("p:CstmrCdtTrf/p:CstmrCdtTrfInf", "p:EndToEndId", NS_IBPS101)
HOME_CURRENCY_SHARE = 0.75  # of a corridor's traffic, in the sender scheme's home currency
# Everyday amounts in major units: (low, high, weight). Kept well under corridor limits.
AMOUNT_BUCKETS = ((20, 500, 0.6), (500, 3_000, 0.3), (3_000, 8_000, 0.1))
EVERYDAY_MINOR_MAX = max(high for _, high, _ in AMOUNT_BUCKETS) * 100  # largest everyday_amount
FILE_BYTES_MAX = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sender:
    """A sending provider: what a message needs to name it."""

    id: str
    scheme: str
    clearing_code: str
    name: str = ""

    @property
    def agent(self) -> Agent:
        return Agent(SCHEME_CLEARING_SYSTEMS[self.scheme], self.clearing_code, self.name or None)


@dataclass(frozen=True, slots=True)
class Payee:
    """A payee at a provider, addressed by proxy (agent left to the directory) or by account."""

    participant_id: str
    scheme: str
    agent: Agent
    name: str
    account: str | None = None
    proxy: Proxy | None = None

    @property
    def creditor_account(self) -> Account:
        return Account(number=self.account, proxy=self.proxy)

    @property
    def creditor_agent(self) -> Agent | None:
        return None if self.proxy is not None else self.agent


def as_sender(p: Any) -> Sender:
    """A Sender from a directory entry (ParticipantIn, routing.Participant) or a Sender."""
    if isinstance(p, Sender):
        return p
    return Sender(p.id, p.scheme, p.clearing_code, getattr(p, "name", "") or "")


def payees_from_directory(
    directory: Any, rng: random.Random, accounts_per_participant: int = 8
) -> list[Payee]:
    """Every registered proxy that passes the adapters' format checks, plus a few accounts
    addressed by number and creditor agent at every provider."""
    parts = {p.id: p for p in directory.participants if p.role == "provider"}
    payees: list[Payee] = []
    for x in directory.proxies:
        p = parts.get(x.participant)
        if p is None or proxy_error(x.type, x.value) is not None:
            continue
        payees.append(
            Payee(p.id, p.scheme, as_sender(p).agent, people.person_name(rng, p.scheme),
                  proxy=Proxy(ProxyType(x.type), x.value))
        )  # fmt: skip
    for p in parts.values():
        agent = as_sender(p).agent
        for _ in range(accounts_per_participant):
            number = people.account_number(rng, p.scheme, p.clearing_code)
            payees.append(Payee(p.id, p.scheme, agent, people.person_name(rng, p.scheme), number))
    return payees


def unknown_proxy_payee(rng: random.Random, like: Payee) -> Payee:
    """A well-formed proxy that no directory holds (BE23 at the gateway)."""
    proxy = people.random_proxy(rng, like.scheme)
    return Payee(like.participant_id, like.scheme, like.agent, like.name, proxy=proxy)


def unknown_account_payee(rng: random.Random, like: Payee) -> Payee:
    """An account the receiving simulator does not hold (AC01 from the provider)."""
    number = UNKNOWN_ACCOUNT_PREFIX + "".join(rng.choice("0123456789") for _ in range(9))
    assert account_error(like.agent.clearing_system, number) is None
    return Payee(like.participant_id, like.scheme, like.agent, like.name, number)


def destinations(
    source: str,
    rules: CorridorRules = DEFAULT_RULES,
    now: dt.datetime | None = None,
    *,
    cross_border_only: bool = False,
) -> list[str]:
    """Schemes a sender of `source` may pay into: corridors that exist and, when `now` is
    given, are in service then (the southbound corridor keeps hours)."""
    found = []
    for dst in SCHEMES:
        if (dst == source and cross_border_only) or rules.closed(source, dst):
            continue
        rule = rules.lookup(source, dst)
        if rule is not None and now is not None and not rule.in_service(now):
            continue
        found.append(dst)
    return found


def corridor_currencies(
    source: str, destination: str, rules: CorridorRules = DEFAULT_RULES
) -> tuple[str, ...]:
    """Currencies the sender may pay in on this corridor, the sender's home currency first."""
    rule = rules.lookup(source, destination)
    carried = SCHEME_CURRENCIES[source]
    return tuple(c for c in carried if rule is None or c in rule.source_currencies)


def pick_currency(rng: random.Random, currencies: Sequence[str]) -> str:
    if len(currencies) == 1 or rng.random() < HOME_CURRENCY_SHARE:
        return currencies[0]
    return rng.choice(currencies[1:])


def everyday_amount(rng: random.Random, currency: str) -> Money:
    low, high, _ = rng.choices(AMOUNT_BUCKETS, [w for *_, w in AMOUNT_BUCKETS])[0]
    minor = rng.randint(low * 100, high * 100)
    if rng.random() < 0.5:
        minor -= minor % 100  # round amounts are common
    return Money(max(minor, 1), currency)


def message_id(sender: Sender, tag: str, seq: int) -> str:
    return f"M{tag}{sender.clearing_code[-3:]}{seq:010d}"[:ID_LENGTH_MAX]


def end_to_end_id(sender: Sender, tag: str, seq: int) -> str:
    return f"E{tag}{sender.clearing_code[-3:]}{seq:010d}"[:ID_LENGTH_MAX]


def make_transfer(
    sender: Sender,
    payee: Payee,
    rng: random.Random,
    *,
    msg_id: str,
    e2e: str,
    created_at: dt.datetime,
    amount: Money | None = None,
) -> Transfer:
    """A credit transfer as the sending provider would instruct it."""
    if amount is None:
        currencies = corridor_currencies(sender.scheme, payee.scheme)
        amount = everyday_amount(rng, pick_currency(rng, currencies))
    debtor = people.debtor(rng, sender.scheme)
    return Transfer(
        msg_id=msg_id,
        end_to_end_id=e2e,
        tx_id="T" + e2e[1:],
        instr_id="I" + e2e[1:],
        uetr=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        source_scheme=sender.scheme,
        amount=amount,
        debtor=debtor,
        debtor_account=Account(people.account_number(rng, sender.scheme, sender.clearing_code)),
        debtor_agent=sender.agent,
        creditor=Party(payee.name),
        creditor_account=payee.creditor_account,
        creditor_agent=payee.creditor_agent,
        remittance_info=people.remittance(rng),
        charge_bearer="SLEV",
        created_at=created_at,
    )


def encode(
    scheme: str, transfers: Sequence[Transfer], msg_id: str, created_at: dt.datetime
) -> bytes:
    """One native message carrying every transfer (the adapter computes NbOfTxs and CtrlSum).

    The adapters' encoders write the gateway's outbound messages, which always name the
    creditor agent. A payee named by proxy alone (creditor_agent None) leaves its resolution
    to Baygate, so such a transfer is written with a stand-in agent outside the sender's
    scheme, whose element is then removed. An ibps.101 goes up to the clearing side, so its
    {H:} header says direction U.
    """
    by_proxy = {t.end_to_end_id for t in transfers if t.creditor_agent is None}
    written = [
        t.evolve(creditor_agent=STAND_IN_AGENT) if t.end_to_end_id in by_proxy else t
        for t in transfers
    ]
    body = get_adapter(scheme).encode_transfers(written, msg_id=msg_id, created_at=created_at)
    if scheme in PACS_SCHEMES:
        return _drop_creditor_agents(body, by_proxy, _PACS_TXS) if by_proxy else body
    env = envelope.split(body, len(body))
    document = _drop_creditor_agents(env.body, by_proxy, _IBPS_TXS) if by_proxy else env.body
    return envelope.wrap(replace(env.header, direction="U"), document, env.signature)


def _drop_creditor_agents(document: bytes, e2e_ids: set[str], where: tuple[str, str, str]) -> bytes:
    """Our own encoder's output (trusted) without CdtrAgt in the given transactions."""
    txs_path, e2e_path, namespace = where
    ns = {"p": namespace}
    root = etree.fromstring(document)
    for tx in root.iterfind(txs_path, ns):
        agent = tx.find("p:CdtrAgt", ns)
        if agent is not None and tx.findtext(e2e_path, namespaces=ns) in e2e_ids:
            tx.remove(agent)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def build_message(
    scheme: str,
    sender: Any,
    payees: Sequence[Payee],
    n_tx: int,
    rng: random.Random,
    *,
    tag: str = "",
    seq: int = 0,
    created_at: dt.datetime | None = None,
    rules: CorridorRules = DEFAULT_RULES,
    cross_border_only: bool = False,
) -> tuple[bytes, list[str]]:
    """A valid `scheme` message from `sender` with `n_tx` everyday transfers.

    The payees sit at other providers of one destination scheme whose corridor is open at
    `created_at`, and the currency is one that corridor takes from the sender, so a gateway
    with the same corridor rules has no reason to refuse them. Ids are `tag` + the sender's
    code + `seq` (message) and `seq + 1`.. (transactions): give each run its own tag so that
    ids never repeat. Returns (bytes, end-to-end ids).
    """
    who = as_sender(sender)
    if who.scheme != scheme:
        raise ValueError(f"sender {who.id} belongs to {who.scheme}, not {scheme}")
    if not 1 <= n_tx <= 10_000:
        raise ValueError("n_tx must lie in [1, 10000]")
    when = created_at or dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    by_scheme: dict[str, list[Payee]] = {}
    for p in payees:
        if p.participant_id != who.id:
            by_scheme.setdefault(p.scheme, []).append(p)
    open_to = [
        d for d in destinations(scheme, rules, when, cross_border_only=cross_border_only)
        if by_scheme.get(d)
    ]  # fmt: skip
    if not open_to:
        raise ValueError(f"no payee reachable from {who.id} at {when.isoformat()}")
    dst = rng.choice(open_to)
    ccy = pick_currency(rng, corridor_currencies(scheme, dst, rules))
    msg_id = message_id(who, tag, seq)
    transfers = [
        make_transfer(who, rng.choice(by_scheme[dst]), rng, msg_id=msg_id, created_at=when,
                      e2e=end_to_end_id(who, tag, seq + 1 + i), amount=everyday_amount(rng, ccy))
        for i in range(n_tx)
    ]  # fmt: skip
    return encode(scheme, transfers, msg_id, when), [t.end_to_end_id for t in transfers]


def load_keys(folder: Path, ids: Iterable[str]) -> dict[str, Any]:
    """Private keys `<folder>/<id>.pem` for the given participants (those that exist)."""
    keys = {}
    for pid in ids:
        path = Path(folder) / f"{pid}.pem"
        if path.exists():
            keys[pid] = load_private_key(path)
    return keys
