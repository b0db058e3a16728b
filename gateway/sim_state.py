"""What a simulated provider decides and remembers: rules, per-participant books, callbacks.

Pure data and decisions, no I/O: `gateway.simulator` wraps this in an aiohttp app. The
decision for one delivered transfer is a function of the transfer, the receiving
participant, the rules and a seeded RNG, so a run with the same seed and the same arrival
order decides the same way.

Redeliveries. The gateway retries a delivery it got no answer for, so one transfer may
arrive several times. A provider must apply it once and answer every copy the same way:
the book keys each decision by the gateway's transfer id when the message carries it, else
by (debtor agent, end-to-end id), and a later copy gets the recorded decision back.

Every memory here is bounded. When the decision memory is full the oldest decision is
forgotten and `evicted` counts it: a run that needs exact redelivery answers must size
`records_max` so that `evicted` stays 0, and can assert so.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from clearing.model import Transfer, TxStatus
from clearing.money import Money
from clearing.reasons import Reason
from gateway.routing import SCHEME_CURRENCIES

# Account numbers starting with these are unknown (AC01) or closed (AC04) at every simulated
# provider by default, so that generated traffic can ask for a receiver-side rejection.
UNKNOWN_ACCOUNT_PREFIX = "990"
CLOSED_ACCOUNT_PREFIX = "991"
FINAL_STATUSES = frozenset({TxStatus.ACSC, TxStatus.RJCT})


@dataclass(frozen=True, slots=True)
class SimRules:
    """How the simulated providers of one scheme behave. Ratios are in [0, 1]."""

    unknown_accounts: frozenset[str] = frozenset()  # -> AC01
    closed_accounts: frozenset[str] = frozenset()  # -> AC04
    unknown_account_prefixes: tuple[str, ...] = (UNKNOWN_ACCOUNT_PREFIX,)
    closed_account_prefixes: tuple[str, ...] = (CLOSED_ACCOUNT_PREFIX,)
    require_account_number: bool = True  # a delivery naming only a proxy -> AC01
    reject_ratio: float = 0.0  # random business rejections with `reject_reason`
    reject_reason: Reason = Reason.AG01
    accept_status: TxStatus = TxStatus.ACSP
    delay_ms: int = 0  # every answer waits this long, plus up to `delay_jitter_ms`
    delay_jitter_ms: int = 0
    silent_participants: frozenset[str] = frozenset()  # never answer
    silent_ratio: float = 0.0  # share of deliveries held without an answer
    silent_hold_s_max: float = 30.0  # a held request is answered 503 after this long
    http_500_ratio: float = 0.0  # transient failure before deciding (nothing applied)
    lost_answer_ratio: float = 0.0  # decide and apply, then answer 500 (answer lost)
    callback_500_ratio: float = 0.0  # status callbacks refused 500 (nothing recorded)
    seed: int = 0
    records_max: int = 1_000_000  # decisions remembered per participant
    callbacks_max: int = 1_000_000  # sender transfers with callbacks remembered per participant
    body_bytes_max: int = 1024 * 1024

    def __post_init__(self) -> None:
        ratios = ("reject_ratio", "silent_ratio", "http_500_ratio", "lost_answer_ratio",
                  "callback_500_ratio")  # fmt: skip
        for name in ratios:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.delay_ms < 0 or self.delay_jitter_ms < 0 or self.silent_hold_s_max < 0:
            raise ValueError("delays must not be negative")
        if self.records_max < 1 or self.callbacks_max < 1 or self.body_bytes_max < 1:
            raise ValueError("limits must be positive")


def rules_to_dict(rules: SimRules) -> dict[str, Any]:
    """JSON-ready form of the rules (sets as sorted lists, enums as codes)."""
    out: dict[str, Any] = {}
    for f in fields(rules):
        value = getattr(rules, f.name)
        if isinstance(value, frozenset | tuple):
            value = sorted(value) if isinstance(value, frozenset) else list(value)
        elif isinstance(value, StrEnum):
            value = value.value
        out[f.name] = value
    return out


def rules_from_dict(data: Mapping[str, Any]) -> SimRules:
    """The inverse of `rules_to_dict`; unknown keys are refused."""
    known = {f.name: f for f in fields(SimRules)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown rule(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(SimRules(), name)
        if isinstance(default, frozenset):
            value = frozenset(value)
        elif isinstance(default, tuple):
            value = tuple(value)
        elif isinstance(default, Reason):
            value = Reason(value)
        elif isinstance(default, TxStatus):
            value = TxStatus(value)
        kwargs[name] = value
    return SimRules(**kwargs)


@dataclass(frozen=True, slots=True)
class SimParticipant:
    """A simulated provider: the parts of a directory entry the simulator needs."""

    id: str
    clearing_code: str
    name: str = ""


def as_sim_participant(pid: str, value: object) -> SimParticipant:
    """Accept a SimParticipant, a directory entry (ParticipantIn, routing.Participant) or a code."""
    if isinstance(value, SimParticipant):
        return value
    if isinstance(value, str):
        return SimParticipant(pid, value)
    code = getattr(value, "clearing_code", None)
    if not isinstance(code, str):
        raise TypeError(f"participant {pid!r}: expected a clearing_code, got {value!r}")
    return SimParticipant(pid, code, str(getattr(value, "name", "") or ""))


@dataclass(frozen=True, slots=True)
class Decision:
    status: TxStatus
    reason: Reason | None = None
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is not TxStatus.RJCT


def dedupe_key(t: Transfer) -> str:
    """The gateway id when carried, else the debtor agent and the end-to-end id."""
    if t.id:
        return f"id:{t.id}"
    agent = t.debtor_agent
    return f"e2e:{agent.clearing_system}:{agent.member_id}:{t.end_to_end_id}"


def credited_amount(t: Transfer) -> Money:
    """What the creditor agent receives: the converted amount when FX applied."""
    return t.creditor_amount or t.amount


def decide(
    t: Transfer, me: SimParticipant, scheme: str, rules: SimRules, rng: random.Random
) -> Decision:
    """The provider's answer to a first delivery. Checks run in a fixed order, cheapest first."""
    agent = t.creditor_agent
    if agent is not None and agent.member_id != me.clearing_code:
        return Decision(
            TxStatus.RJCT, Reason.RC10, f"creditor agent {agent.member_id} is not {me.id}"
        )
    ccy = credited_amount(t).currency
    if ccy not in SCHEME_CURRENCIES.get(scheme, ()):
        return Decision(TxStatus.RJCT, Reason.AM03, f"{scheme} does not carry {ccy}")
    number = t.creditor_account.number
    if number is None:
        if rules.require_account_number:
            return Decision(TxStatus.RJCT, Reason.AC01, "no creditor account number")
    elif number in rules.unknown_accounts or number.startswith(rules.unknown_account_prefixes):
        return Decision(TxStatus.RJCT, Reason.AC01, "no such account")
    elif number in rules.closed_accounts or number.startswith(rules.closed_account_prefixes):
        return Decision(TxStatus.RJCT, Reason.AC04, "account closed")
    if rules.reject_ratio and rng.random() < rules.reject_ratio:
        return Decision(TxStatus.RJCT, rules.reject_reason, "rejected by the provider")
    return Decision(rules.accept_status)


@dataclass(slots=True)
class Applied:
    end_to_end_id: str
    amount: Money


@dataclass
class ProviderBook:
    """One participant's memory of deliveries: decisions, credits applied once, callbacks."""

    participant: SimParticipant
    records_max: int = 1_000_000
    callbacks_max: int = 1_000_000
    deliveries: int = 0  # HTTP requests to /transfers, whatever became of them
    transactions: int = 0  # transactions decoded, copies included
    duplicates: int = 0  # transactions answered from memory
    malformed: int = 0  # requests whose body did not decode
    held: int = 0  # requests held without an answer
    failed: int = 0  # requests answered 500 before deciding
    lost_answers: int = 0  # decided and applied, then answered 500
    evicted: int = 0  # decisions forgotten because the memory was full
    decisions: OrderedDict[str, Decision] = field(default_factory=OrderedDict)
    applied: dict[str, Applied] = field(default_factory=dict)
    credited_minor: dict[str, int] = field(default_factory=dict)
    callbacks: OrderedDict[str, list[tuple[TxStatus, Reason | None]]] = field(
        default_factory=OrderedDict
    )
    # (delivered message id, end-to-end id) -> decision key, to match the gateway's notices
    delivered: dict[tuple[str, str], str] = field(default_factory=dict)
    reversed: int = 0  # credits reversed on a notice that the transfer expired unpaid
    notices: int = 0  # notices received (about transfers delivered to this participant)
    callbacks_received: int = 0
    status_reports: int = 0  # callback reports received, each telling one or more transfers
    callbacks_dropped: int = 0
    callbacks_failed: int = 0  # answered 500 on purpose

    @property
    def distinct(self) -> int:
        """Distinct transfers decided (each counted once however often it arrived)."""
        return len(self.decisions) + self.evicted

    def recall(self, key: str) -> Decision | None:
        return self.decisions.get(key)

    def record(self, key: str, t: Transfer, decision: Decision, msg_id: str | None = None) -> None:
        """Remember a first decision and apply an acceptance, exactly once per key."""
        if key in self.decisions:
            raise AssertionError(f"decision for {key} recorded twice")
        if len(self.decisions) >= self.records_max:
            old_key, _ = self.decisions.popitem(last=False)
            self.applied.pop(old_key, None)
            self.evicted += 1
            if len(self.delivered) >= self.records_max:
                self.delivered.pop(next(iter(self.delivered)))
        self.decisions[key] = decision
        if msg_id is not None:
            self.delivered[(msg_id, t.end_to_end_id)] = key
        if decision.accepted:
            amount = credited_amount(t)
            self.applied[key] = Applied(t.end_to_end_id, amount)
            self.credited_minor[amount.currency] = (
                self.credited_minor.get(amount.currency, 0) + amount.minor
            )

    def reverse(self, msg_id: str, e2e: str, gateway_id: str | None = None) -> bool:
        """The gateway says a delivered transfer ended unpaid: undo its credit, once.

        The transfer is found by the gateway's id where its delivery carried one (pacs.008
        ClrSysRef: the notice names it so whatever message delivered it), else by the
        delivered message and end-to-end id. True when a credit was reversed; a transfer
        this provider refused, or one already reversed, changes nothing (notices may come
        more than once)."""
        self.notices += 1
        by_id = f"id:{gateway_id}" if gateway_id else None
        key = by_id if by_id in self.decisions else self.delivered.get((msg_id, e2e))
        applied = self.applied.pop(key, None) if key is not None else None
        if applied is None:
            return False
        ccy = applied.amount.currency
        self.credited_minor[ccy] = self.credited_minor.get(ccy, 0) - applied.amount.minor
        if self.credited_minor[ccy] == 0:
            del self.credited_minor[ccy]
        self.reversed += 1
        return True

    def record_callback(self, e2e: str, status: TxStatus, reason: Reason | None) -> None:
        self.callbacks_received += 1
        seen = self.callbacks.get(e2e)
        if seen is None:
            if len(self.callbacks) >= self.callbacks_max:
                self.callbacks_dropped += 1
                return
            seen = self.callbacks[e2e] = []
        if len(seen) < 16:  # a few repeats are telling; hundreds are a loop
            seen.append((status, reason))

    def final_status(self, e2e: str) -> tuple[TxStatus, Reason | None] | None:
        """The first final status reported for a transfer this participant sent."""
        for status, reason in self.callbacks.get(e2e, ()):
            if status in FINAL_STATUSES:
                return status, reason
        return None

    def summary(self) -> dict[str, object]:
        accepted = len(self.applied)  # net of reversals
        return {
            "deliveries": self.deliveries,
            "transactions": self.transactions,
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "accepted": accepted,
            "rejected": len(self.decisions) - accepted - self.reversed,
            "reversed": self.reversed,
            "notices": self.notices,
            "malformed": self.malformed,
            "held": self.held,
            "failed": self.failed,
            "lost_answers": self.lost_answers,
            "evicted": self.evicted,
            "credited_minor": dict(self.credited_minor),
            "callbacks_received": self.callbacks_received,
            "callbacks_failed": self.callbacks_failed,
            "callback_transfers": len(self.callbacks),
        }


class SimulatorState:
    """The books of every participant one simulator app hosts, and its RNG."""

    def __init__(self, scheme: str, participants: Mapping[str, object], rules: SimRules) -> None:
        self.scheme = scheme
        self.rules = rules
        self.rng = random.Random(rules.seed)
        self.books: dict[str, ProviderBook] = {
            pid: ProviderBook(as_sim_participant(pid, p), rules.records_max, rules.callbacks_max)
            for pid, p in participants.items()
        }

    def book(self, pid: str) -> ProviderBook | None:
        return self.books.get(pid)

    def credited_minor(self, pids: Iterable[str] | None = None) -> dict[str, int]:
        """Sum of amounts applied per currency over the given participants (default all)."""
        out: dict[str, int] = {}
        for pid in self.books if pids is None else pids:
            for ccy, minor in self.books[pid].credited_minor.items():
                out[ccy] = out.get(ccy, 0) + minor
        return out

    def summary(self) -> dict[str, dict[str, object]]:
        return {pid: book.summary() for pid, book in self.books.items()}
