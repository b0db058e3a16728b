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
from adapters.encoding import Out, code_element, instructed, iso_datetime, settlement
from adapters.identifiers import ORGANISATION_ID_TYPES
from adapters.pacs.mapping import (
    ACCOUNT_LENGTH_MAX,
    ID_LENGTH_MAX,
    NAME_LENGTH_MAX,
    NS_PACS008,
    PRIORITY_CODE,
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
CHARGE_BEARERS = frozenset({"DEBT", "CRED", "SHAR", "SLEV"})


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
    """One CdtTrfTxInf, written as a few templates (this runs per transaction)."""
    money = settlement(t, profile.currencies, profile.scheme, out)
    parts = w.parts
    parts.append("<CdtTrfTxInf><PmtId>")
    _opt(parts, "InstrId", out.text(t.instr_id, "instr_id", ID_LENGTH_MAX))
    parts.append(
        f"<EndToEndId>{out.text(t.end_to_end_id, 'end_to_end_id', ID_LENGTH_MAX, required=True)}</EndToEndId>"
    )
    _opt(parts, "TxId", out.text(t.tx_id, "tx_id", ID_LENGTH_MAX))
    _opt(parts, "UETR", out.text(t.uetr, "uetr", 36))
    _opt(parts, "ClrSysRef", out.text(t.id, "id", ID_LENGTH_MAX))
    parts.append("</PmtId>")
    priority = PRIORITY_CODE.get(t.priority)
    if priority is None:
        out.add(Reason.FF01, "priority", "must be urgent or normal")
    urgent = priority == PRIORITY_CODE["urgent"]  # normal is InstrPrty's default: not written
    if urgent or t.category_purpose is not None:
        parts.append("<PmtTpInf>")
        if urgent:
            parts.append(f"<InstrPrty>{priority}</InstrPrty>")
        if t.category_purpose is not None:
            parts.append(_code("CtgyPurp", t.category_purpose, "category_purpose", out))
        parts.append("</PmtTpInf>")
    if money is not None:
        parts.append(f'<IntrBkSttlmAmt Ccy="{money.currency}">{money.format()}</IntrBkSttlmAmt>')
    instd = instructed(t)
    if instd is not None:
        parts.append(f'<InstdAmt Ccy="{instd.currency}">{instd.format()}</InstdAmt>')
    _opt(parts, "XchgRate", out.text(t.exchange_rate, "exchange_rate", 22))
    bearer = t.charge_bearer or CHARGE_BEARER_DEFAULT
    if bearer not in CHARGE_BEARERS:
        out.add(Reason.FF01, "charge_bearer", "must be DEBT, CRED, SHAR or SLEV")
    parts.append(f"<ChrgBr>{bearer}</ChrgBr>")
    parts.append(_party("Dbtr", t.debtor, "debtor", out))
    parts.append(_account("DbtrAcct", t.debtor_account, "debtor_account", out))
    parts.append(_agent("DbtrAgt", t.debtor_agent, "debtor_agent", out))
    if t.creditor_agent is None:
        out.add(Reason.RC10, "creditor_agent", "the receiving provider must be known to encode")
    else:
        parts.append(_agent("CdtrAgt", t.creditor_agent, "creditor_agent", out))
    parts.append(_party("Cdtr", t.creditor, "creditor", out))
    parts.append(_account("CdtrAcct", t.creditor_account, "creditor_account", out))
    if t.purpose is not None:
        parts.append(_code("Purp", t.purpose, "purpose", out))
    if t.remittance_info is not None:
        parts.append(_remittance(t.remittance_info, out))
    parts.append("</CdtTrfTxInf>")
    return money


def _opt(parts: list[str], name: str, value: str | None) -> None:
    if value is not None:
        parts.append(f"<{name}>{value}</{name}>")


def _code(name: str, value: str, field: str, out: Out) -> str:
    element = code_element(value)
    text = out.text(value, field, 4 if element == "Cd" else ID_LENGTH_MAX)
    return f"<{name}><{element}>{text}</{element}></{name}>"


def _remittance(value: str, out: Out) -> str:
    """Split into Ustrd pieces of 140 characters; the reader joins them back without separator."""
    if out.text(value, "remittance_info", USTRD_MAX * USTRD_LENGTH_MAX) is None:
        return ""
    pieces = [
        f"<Ustrd>{out.piece(value[i : i + USTRD_LENGTH_MAX], 'remittance_info', USTRD_LENGTH_MAX)}</Ustrd>"
        for i in range(0, len(value), USTRD_LENGTH_MAX)
    ]
    return f"<RmtInf>{''.join(pieces)}</RmtInf>"


def _party(name: str, party: Party, field: str, out: Out) -> str:
    nm = out.cut(party.name, f"{field}.name", NAME_LENGTH_MAX)
    if party.id is None:
        return f"<{name}><Nm>{nm}</Nm></{name}>"
    kind = "OrgId" if party.id.type in ORGANISATION_ID_TYPES else "PrvtId"
    value = out.text(party.id.value, f"{field}.id", ID_LENGTH_MAX)
    return (
        f"<{name}><Nm>{nm}</Nm><Id><{kind}><Othr><Id>{value}</Id>"
        f"<SchmeNm><Prtry>{party.id.type.value}</Prtry></SchmeNm></Othr></{kind}></Id></{name}>"
    )


def _account(name: str, account: Account, field: str, out: Out) -> str:
    if account.number is None and account.proxy is None:
        out.add(Reason.AC01, field, "an account number or a proxy is required")
        return ""
    number = out.text(account.number or NOT_PROVIDED, f"{field}.number", ACCOUNT_LENGTH_MAX)
    if account.proxy is None:
        return f"<{name}><Id><Othr><Id>{number}</Id></Othr></Id></{name}>"
    proxy = out.text(account.proxy.value, f"{field}.proxy", PROXY_ID_LENGTH_MAX)
    return (
        f"<{name}><Id><Othr><Id>{number}</Id></Othr></Id>"
        f"<Prxy><Tp><Cd>{account.proxy.type.value}</Cd></Tp><Id>{proxy}</Id></Prxy></{name}>"
    )


def _agent(name: str, agent: Agent, field: str, out: Out) -> str:
    system = CLEARING_SYSTEM_ELEMENTS.get(agent.clearing_system)
    if system is None:
        out.add(
            Reason.RC10, field, f"clearing system {agent.clearing_system[:12]!r} is not carried"
        )
        return ""
    element, code = system
    member = out.text(agent.member_id, field, ID_LENGTH_MAX)
    nm = (
        ""
        if agent.name is None
        else f"<Nm>{out.cut(agent.name, f'{field}.name', NAME_LENGTH_MAX)}</Nm>"
    )
    return (
        f"<{name}><FinInstnId><ClrSysMmbId><ClrSysId><{element}>{code}</{element}></ClrSysId>"
        f"<MmbId>{member}</MmbId></ClrSysMmbId>{nm}</FinInstnId></{name}>"
    )
