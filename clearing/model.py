"""The canonical transfer: one shape every scheme adapter decodes into and encodes from.

Pure data: frozen dataclasses, no I/O, no clock. Adapters (`adapters/`) translate scheme
messages to and from these types; the clearing core (`clearing/`) decides on them; the
gateway (`gateway/`) stores and moves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from clearing.money import Money

SCHEMES = ("hk-fps", "cn-ibps", "mo-fps")


class ProxyType(StrEnum):
    MOBILE = "MOBN"  # ISO 20022 form +852-91234567
    EMAIL = "EMAL"
    FPS_ID = "SHID"  # FPS Identifier (Hong Kong); Baygate also uses it for Macau FPS IDs


class PartyIdType(StrEnum):
    HKID = "HKID"  # Hong Kong identity card
    CN_RIC = "CNRIC"  # Mainland resident ID (GB 11643)
    CN_USCC = "CNUSCC"  # Unified Social Credit Code (GB 32100)
    MO_BIR = "MOBIR"  # Macau resident identity card
    OTHER = "OTHR"


@dataclass(frozen=True, slots=True)
class PartyId:
    type: PartyIdType
    value: str


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    id: PartyId | None = None


@dataclass(frozen=True, slots=True)
class Proxy:
    type: ProxyType
    value: str


@dataclass(frozen=True, slots=True)
class Account:
    """An account number, or a proxy to be resolved through the directory, or both."""

    number: str | None = None
    proxy: Proxy | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """A financial institution by clearing system and member id (HKNCC 003, CNAPS 12 digits, ...)."""

    clearing_system: str
    member_id: str
    name: str | None = None


class TxStatus(StrEnum):
    """ISO 20022 transaction status as reported to senders."""

    ACCP = "ACCP"
    ACSP = "ACSP"
    ACSC = "ACSC"
    PDNG = "PDNG"
    RJCT = "RJCT"


class TransferState(StrEnum):
    """Life cycle inside Baygate (see ARCHITECTURE.md for the state machine)."""

    RECEIVED = "RECEIVED"
    QUEUED = "QUEUED"
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One credit transfer, scheme-neutral.

    `amount` is what the debtor agent pays (interbank settlement amount in the sender's
    scheme). `creditor_amount` is what the creditor agent receives when a currency
    conversion applies (None when the same currency). `instructed_amount` is carried as
    given by the sender when present.
    """

    msg_id: str
    end_to_end_id: str
    source_scheme: str
    amount: Money
    debtor: Party
    debtor_account: Account
    debtor_agent: Agent
    creditor: Party
    creditor_account: Account
    creditor_agent: Agent | None = None
    destination_scheme: str | None = None
    id: str | None = None  # gateway id, assigned on acceptance
    tx_id: str | None = None
    instr_id: str | None = None
    uetr: str | None = None
    creditor_amount: Money | None = None
    instructed_amount: Money | None = None
    exchange_rate: str | None = None  # decimal string as carried in XchgRate
    quote_id: str | None = None
    purpose: str | None = None
    category_purpose: str | None = None
    remittance_info: str | None = None
    charge_bearer: str | None = None
    created_at: datetime | None = None  # CreDtTm of the message, as sent
    priority: str = "normal"  # "urgent" | "normal": order in the liquidity-saving queue
    extras: tuple[tuple[str, str], ...] = field(default=())

    def evolve(self, **changes: object) -> Transfer:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def settlement_currency(self) -> str:
        return (self.creditor_amount or self.amount).currency
