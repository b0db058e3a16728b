"""Pydantic models of the JSON API; `/openapi.json` is generated from them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Str35 = Field(min_length=1, max_length=35, pattern=r"^[A-Za-z0-9/\-?:().,'+ ]+$")
Amount = Field(pattern=r"^\d{1,13}(\.\d{1,5})?$", description="decimal amount, e.g. 1250.00")
Currency = Field(pattern=r"^[A-Z]{3}$")
# The values of clearing.model.TxStatus, as the API documents them.
TxStatusCode = Literal["ACCP", "ACSP", "ACSC", "PDNG", "RJCT"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProxyIn(_In):
    type: Literal["MOBN", "EMAL", "SHID"]
    value: str = Field(min_length=3, max_length=320)


class PartyIn(_In):
    name: str = Field(min_length=1, max_length=140)
    id_type: Literal["HKID", "CNRIC", "CNUSCC", "MOBIR", "OTHR"] | None = None
    id_value: str | None = Field(default=None, max_length=35)


class AccountIn(_In):
    number: str | None = Field(
        default=None, min_length=1, max_length=34, pattern=r"^[A-Za-z0-9\-]+$"
    )
    proxy: ProxyIn | None = None


class AgentIn(_In):
    clearing_system: Literal["HKNCC", "CNAPS", "MOFPS"]
    member_id: str = Field(pattern=r"^\d{3,12}$")


class TransferIn(_In):
    """A credit transfer in Baygate's canonical JSON form."""

    msg_id: str = Str35
    end_to_end_id: str = Str35
    amount: str = Amount
    currency: str = Currency
    debtor: PartyIn
    debtor_account: AccountIn
    creditor: PartyIn
    creditor_account: AccountIn
    creditor_agent: AgentIn | None = None
    quote_id: str | None = Field(default=None, max_length=64)
    priority: Literal["urgent", "normal"] = "normal"
    purpose: str | None = Field(default=None, max_length=35)
    remittance_info: str | None = Field(default=None, max_length=140)
    uetr: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
    )


class TransferOut(BaseModel):
    id: str | None
    end_to_end_id: str
    status: TxStatusCode
    reason: str | None = None
    message: str | None = None
    replay: bool = False


class TransferEvent(BaseModel):
    at: str
    state: str
    status: str
    reason: str | None = None
    detail: str | None = None


class TransferDetail(BaseModel):
    id: str
    sender: str
    receiver: str | None
    source_scheme: str
    destination_scheme: str | None
    end_to_end_id: str
    state: str
    status: str
    reason: str | None
    message: str | None
    amount: str
    currency: str
    creditor_amount: str | None
    creditor_currency: str | None
    created_at: str
    history: list[TransferEvent]


class QuoteIn(_In):
    source_currency: str = Currency
    target_currency: str = Currency


class QuoteOut(BaseModel):
    id: str
    source_currency: str
    target_currency: str
    rate: str
    expires_at: str


class ParticipantOut(BaseModel):
    id: str
    name: str
    scheme: str
    clearing_system: str
    clearing_code: str
    role: str
    status: str


class PositionOut(BaseModel):
    participant_id: str
    currency: str
    net: str = Field(description="committed debits minus credits not yet settled")
    reserved: str
    net_debit_cap: str
    liquidity_cover: str
    headroom: str


class LimitsIn(_In):
    net_debit_cap: str = Amount
    liquidity_cover: str = Amount
    liquidity_saving: bool | None = None


class ParticipantIn(_In):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    name: str = Field(min_length=1, max_length=140)
    scheme: Literal["hk-fps", "cn-ibps", "mo-fps"]
    clearing_code: str = Field(pattern=r"^\d{3,12}$")
    endpoint_url: str | None = Field(default=None, max_length=2048)
    public_key_ed25519: str = Field(min_length=40, max_length=64)


class ParticipantPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=140)
    endpoint_url: str | None = Field(default=None, max_length=2048)
    public_key_ed25519: str | None = Field(default=None, min_length=40, max_length=64)
    status: Literal["active", "suspended"] | None = None


class ConfirmIn(_In):
    participant_id: str = Field(max_length=64)
    currency: str = Currency
    reference: str = Field(min_length=1, max_length=64)


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
