"""Canonical transfers -> pacs.008.001.08 for the receiving provider.

Every refusal is collected before raising, so one TranslationError names all the reasons.
Element order follows the XSD (the conformance tests validate the output against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from adapters.base import TranslationError
from adapters.checks import NOT_PROVIDED, PROXY_ID_LENGTH_MAX
from adapters.encoding import Out, amount_attr, code_element, instructed, iso_datetime, settlement
from adapters.identifiers import ORGANISATION_ID_TYPES
from adapters.pacs.mapping import (
    ACCOUNT_LENGTH_MAX,
    ID_LENGTH_MAX,
    NAME_LENGTH_MAX,
    NS_PACS008,
    USTRD_LENGTH_MAX,
    USTRD_MAX,
)
from adapters.pacs.profile import PacsProfile
from adapters.xmlsafe import Writer
from clearing.model import Account, Agent, Party, Transfer
from clearing.money import Money
from clearing.reasons import Reason

# How each clearing system is named in ClrSysId: ISO external codes where one exists.
CLEARING_SYSTEM_ELEMENTS = {
    "HKNCC": ("Cd", "HKNCC"),
    "CNAPS": ("Cd", "CNAPS"),
    "MOFPS": ("Prtry", "MOFPS"),
}
CHARGE_BEARER_DEFAULT = "SLEV"


def encode(
    profile: PacsProfile, transfers: Sequence[Transfer], msg_id: str, created_at: datetime
) -> bytes:
    head = Out("")
    msg = head.text(msg_id, "msg_id", ID_LENGTH_MAX, required=True)
    created = iso_datetime(created_at, head)
    if not transfers or len(transfers) > profile.txs_max:
        head.add(Reason.FF01, "transfers", f"a message holds 1 to {profile.txs_max} transfers")
    head.raise_if_any()
    w = Writer()
    w.open("Document", f' xmlns="{NS_PACS008}"')
    w.open("FIToFICstmrCdtTrf")
    header_at = w.mark()
    total, problems = Decimal(0), []
    for t in transfers:
        out = Out(t.end_to_end_id)
        money = _tx(profile, w, t, out)
        problems.extend(out.items)
        if money is not None:
            total += money.to_decimal()
    if problems:
        raise TranslationError(problems)
    w.close("FIToFICstmrCdtTrf")
    w.close("Document")
    header = Writer()
    header.parts = []
    header.open("GrpHdr")
    header.leaf("MsgId", msg)  # type: ignore[arg-type]
    header.leaf("CreDtTm", created)  # type: ignore[arg-type]
    header.leaf("NbOfTxs", str(len(transfers)))
    header.leaf("CtrlSum", str(total))
    header.open("SttlmInf")
    header.leaf("SttlmMtd", "CLRG")
    header.close("SttlmInf")
    header.close("GrpHdr")
    w.parts[header_at:header_at] = header.parts
    return w.bytes()


def _tx(profile: PacsProfile, w: Writer, t: Transfer, out: Out) -> Money | None:
    money = settlement(t, profile.currencies, profile.scheme, out)
    e2e = out.text(t.end_to_end_id, "end_to_end_id", ID_LENGTH_MAX, required=True)
    w.open("CdtTrfTxInf")
    w.open("PmtId")
    _opt(w, "InstrId", out.text(t.instr_id, "instr_id", ID_LENGTH_MAX))
    w.leaf("EndToEndId", e2e or "")
    _opt(w, "TxId", out.text(t.tx_id, "tx_id", ID_LENGTH_MAX))
    _opt(w, "UETR", out.text(t.uetr, "uetr", 36))
    _opt(w, "ClrSysRef", out.text(t.id, "id", ID_LENGTH_MAX))
    w.close("PmtId")
    if t.category_purpose is not None:
        w.open("PmtTpInf")
        _code(w, "CtgyPurp", t.category_purpose, "category_purpose", out)
        w.close("PmtTpInf")
    if money is not None:
        w.leaf("IntrBkSttlmAmt", money.format(), amount_attr(money))
    instd = instructed(t)
    if instd is not None:
        w.leaf("InstdAmt", instd.format(), amount_attr(instd))
    _opt(w, "XchgRate", out.text(t.exchange_rate, "exchange_rate", 22))
    w.leaf("ChrgBr", out.text(t.charge_bearer or CHARGE_BEARER_DEFAULT, "charge_bearer", 4) or "")
    _party(w, "Dbtr", t.debtor, "debtor", out)
    _account(w, "DbtrAcct", t.debtor_account, "debtor_account", out)
    _agent(w, "DbtrAgt", t.debtor_agent, "debtor_agent", out)
    if t.creditor_agent is None:
        out.add(Reason.RC10, "creditor_agent", "the receiving provider must be known to encode")
    else:
        _agent(w, "CdtrAgt", t.creditor_agent, "creditor_agent", out)
    _party(w, "Cdtr", t.creditor, "creditor", out)
    _account(w, "CdtrAcct", t.creditor_account, "creditor_account", out)
    if t.purpose is not None:
        _code(w, "Purp", t.purpose, "purpose", out)
    if t.remittance_info is not None:
        _remittance(w, t.remittance_info, out)
    w.close("CdtTrfTxInf")
    return money


def _opt(w: Writer, name: str, value: str | None) -> None:
    if value is not None:
        w.leaf(name, value)


def _code(w: Writer, name: str, value: str, field: str, out: Out) -> None:
    element = code_element(value)
    w.open(name)
    w.leaf(element, out.text(value, field, 4 if element == "Cd" else ID_LENGTH_MAX) or "")
    w.close(name)


def _remittance(w: Writer, value: str, out: Out) -> None:
    """Split into Ustrd pieces of 140 characters; the reader joins them back without separator."""
    if out.text(value, "remittance_info", USTRD_MAX * USTRD_LENGTH_MAX) is None:
        return
    w.open("RmtInf")
    for start in range(0, len(value), USTRD_LENGTH_MAX):
        piece = value[start : start + USTRD_LENGTH_MAX]
        w.leaf("Ustrd", out.piece(piece, "remittance_info", USTRD_LENGTH_MAX) or "")
    w.close("RmtInf")


def _party(w: Writer, name: str, party: Party, field: str, out: Out) -> None:
    w.open(name)
    w.leaf("Nm", out.cut(party.name, f"{field}.name", NAME_LENGTH_MAX) or "")
    if party.id is not None:
        kind = "OrgId" if party.id.type in ORGANISATION_ID_TYPES else "PrvtId"
        w.open("Id")
        w.open(kind)
        w.open("Othr")
        w.leaf("Id", out.text(party.id.value, f"{field}.id", ID_LENGTH_MAX) or "")
        w.open("SchmeNm")
        w.leaf("Prtry", party.id.type.value)
        w.close("SchmeNm")
        w.close("Othr")
        w.close(kind)
        w.close("Id")
    w.close(name)


def _account(w: Writer, name: str, account: Account, field: str, out: Out) -> None:
    if account.number is None and account.proxy is None:
        out.add(Reason.AC01, field, "an account number or a proxy is required")
        return
    w.open(name)
    w.open("Id")
    w.open("Othr")
    number = account.number if account.number is not None else NOT_PROVIDED
    w.leaf("Id", out.text(number, f"{field}.number", ACCOUNT_LENGTH_MAX) or "")
    w.close("Othr")
    w.close("Id")
    if account.proxy is not None:
        w.open("Prxy")
        w.open("Tp")
        w.leaf("Cd", account.proxy.type.value)
        w.close("Tp")
        w.leaf("Id", out.text(account.proxy.value, f"{field}.proxy", PROXY_ID_LENGTH_MAX) or "")
        w.close("Prxy")
    w.close(name)


def _agent(w: Writer, name: str, agent: Agent, field: str, out: Out) -> None:
    system = CLEARING_SYSTEM_ELEMENTS.get(agent.clearing_system)
    if system is None:
        out.add(
            Reason.RC10, field, f"clearing system {agent.clearing_system[:12]!r} is not carried"
        )
        return
    w.open(name)
    w.open("FinInstnId")
    w.open("ClrSysMmbId")
    w.open("ClrSysId")
    w.leaf(*system)
    w.close("ClrSysId")
    w.leaf("MmbId", out.text(agent.member_id, f"{field}", ID_LENGTH_MAX) or "")
    w.close("ClrSysMmbId")
    if agent.name is not None:
        w.leaf("Nm", out.cut(agent.name, f"{field}.name", NAME_LENGTH_MAX) or "")
    w.close("FinInstnId")
    w.close(name)
