"""Canonical transfers -> ibps.101 (envelope + document) for a Mainland receiving provider.

Rules that stand in for what IBPS cannot carry are in the mapping table
(`adapters.cn_ibps.mapping.IBPS_TABLE`); anything else that does not fit is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from adapters.base import TranslationError
from adapters.checks import NOT_PROVIDED, PROXY_ID_LENGTH_MAX
from adapters.cn_ibps import envelope
from adapters.cn_ibps.identifiers import CLEARING_SYSTEM
from adapters.cn_ibps.mapping import (
    ACCOUNT_LENGTH_MAX,
    ADDTL_INF_LENGTH_MAX,
    CURRENCY,
    ID_LENGTH_MAX,
    MSG_TYPE_101,
    NAME_LENGTH_MAX,
    NS_IBPS101,
    SYSTEM_CODE,
)
from adapters.encoding import Out, instructed, iso_datetime, settlement
from adapters.identifiers import CLEARING_SYSTEMS
from adapters.xmlsafe import Writer
from clearing.model import Account, Agent, Party, Transfer
from clearing.money import Money
from clearing.reasons import Reason

SCHEME = "cn-ibps"
CURRENCIES = frozenset({CURRENCY})
CHARGE_BEARERS_CARRIED = frozenset({None, "SLEV"})


def encode(
    transfers: Sequence[Transfer],
    msg_id: str,
    created_at: datetime,
    link_member_id: str,
    txs_max: int,
) -> bytes:
    head = Out("")
    mid = head.text(msg_id, "msg_id", ID_LENGTH_MAX, required=True)
    if mid is not None and (" " in msg_id or not msg_id.isascii()):
        head.add(
            Reason.FF01, "msg_id", "an IBPS MsgId is printable ASCII without spaces ({H:} header)"
        )
    created = iso_datetime(created_at, head)
    if not transfers or len(transfers) > txs_max:
        head.add(Reason.FF01, "transfers", f"a message holds 1 to {txs_max} transfers")
    head.raise_if_any()
    instructing = _common_cnaps([t.debtor_agent for t in transfers]) or link_member_id
    instructed_party = _common_cnaps([t.creditor_agent for t in transfers]) or link_member_id
    txs, total, problems = Writer(), Decimal(0), []
    txs.parts = []
    for t in transfers:
        out = Out(t.end_to_end_id)
        money = _tx(txs, t, out)
        problems.extend(out.items)
        if money is not None:
            total += money.to_decimal()
    if problems:
        raise TranslationError(problems)
    w = Writer()
    w.open("Document", f' xmlns="{NS_IBPS101}"')
    w.open("CstmrCdtTrf")
    w.open("GrpHdr")
    w.leaf("MsgId", mid or "")
    w.leaf("CreDtTm", created or "")
    w.open("InstgPty")
    w.leaf("InstgDrctPty", instructing)
    w.close("InstgPty")
    w.open("InstdPty")
    w.leaf("InstdDrctPty", instructed_party)
    w.close("InstdPty")
    w.leaf("NbOfTxs", str(len(transfers)))
    w.leaf("CtrlSum", str(total), f' Ccy="{CURRENCY}"')
    w.leaf("SysCd", SYSTEM_CODE)
    w.close("GrpHdr")
    w.parts.extend(txs.parts)
    w.close("CstmrCdtTrf")
    w.close("Document")
    header = envelope.Header(
        sender=instructing,
        receiver=instructed_party,
        send_date=envelope.date_field(created_at),
        send_time=envelope.time_field(created_at),
        msg_type=MSG_TYPE_101,
        msg_id=msg_id,
        ref_id=msg_id,
        direction="D",
    )
    return envelope.wrap(header, w.bytes())


def _common_cnaps(agents: Sequence[Agent | None]) -> str | None:
    codes = {a.member_id for a in agents if a is not None and a.clearing_system == CLEARING_SYSTEM}
    every = all(a is not None and a.clearing_system == CLEARING_SYSTEM for a in agents)
    return codes.pop() if every and len(codes) == 1 else None


def _tx(w: Writer, t: Transfer, out: Out) -> Money | None:
    """One CstmrCdtTrfInf, written as a few templates (this runs per transaction)."""
    money = settlement(t, CURRENCIES, SCHEME, out)
    if t.charge_bearer not in CHARGE_BEARERS_CARRIED:
        out.add(
            Reason.NARR,
            "charge_bearer",
            f"cn-ibps cannot carry charge bearer {t.charge_bearer!r}: IBPS charges follow the scheme (SLEV only)",
        )
    parts = w.parts
    tx_id = out.text(t.tx_id or t.end_to_end_id, "tx_id", ID_LENGTH_MAX)
    e2e = out.text(t.end_to_end_id, "end_to_end_id", ID_LENGTH_MAX, required=True)
    parts.append(f"<CstmrCdtTrfInf><TxId>{tx_id}</TxId><EndToEndId>{e2e}</EndToEndId>")
    if t.uetr is not None:
        parts.append(f"<UETR>{out.text(t.uetr, 'uetr', 36)}</UETR>")
    if t.id is not None:
        parts.append(f"<ClrSysRef>{out.text(t.id, 'id', ID_LENGTH_MAX)}</ClrSysRef>")
    parts.append(_party("Dbtr", t.debtor, "debtor", out))
    parts.append(_account("DbtrAcct", t.debtor_account, "debtor_account", out))
    parts.append(_agent("DbtrAgt", t.debtor_agent, "debtor_agent", out))
    if t.creditor_agent is None:
        out.add(Reason.RC10, "creditor_agent", "the receiving provider must be known to encode")
    else:
        parts.append(_agent("CdtrAgt", t.creditor_agent, "creditor_agent", out))
    parts.append(_party("Cdtr", t.creditor, "creditor", out))
    parts.append(_account("CdtrAcct", t.creditor_account, "creditor_account", out))
    if money is not None:
        parts.append(f'<Amt Ccy="{money.currency}">{money.format()}</Amt>')
    instd = instructed(t)
    if instd is not None:
        parts.append(f'<InstdAmt Ccy="{instd.currency}">{instd.format()}</InstdAmt>')
    if t.exchange_rate is not None:
        parts.append(f"<XchgRate>{out.text(t.exchange_rate, 'exchange_rate', 22)}</XchgRate>")
    if t.category_purpose is not None:
        ctgy = out.text(t.category_purpose, "category_purpose", ID_LENGTH_MAX)
        parts.append(f"<PmtTpInf><CtgyPurp><Prtry>{ctgy}</Prtry></CtgyPurp></PmtTpInf>")
    if t.purpose is not None:
        parts.append(f"<Purp><Prtry>{out.text(t.purpose, 'purpose', ID_LENGTH_MAX)}</Prtry></Purp>")
    if t.remittance_info is not None:
        info = out.text(t.remittance_info, "remittance_info", ADDTL_INF_LENGTH_MAX)
        parts.append(f"<AddtlInf>{info}</AddtlInf>")
    parts.append("</CstmrCdtTrfInf>")
    return money


def _party(name: str, party: Party, field: str, out: Out) -> str:
    nm = out.cut(party.name, f"{field}.name", NAME_LENGTH_MAX)
    if party.id is None:
        return f"<{name}><Nm>{nm}</Nm></{name}>"
    value = out.text(party.id.value, f"{field}.id", ID_LENGTH_MAX)
    return f"<{name}><Nm>{nm}</Nm><Id><Tp>{party.id.type.value}</Tp><Id>{value}</Id></Id></{name}>"


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
        f"<Prxy><Tp>{account.proxy.type.value}</Tp><Id>{proxy}</Id></Prxy></{name}>"
    )


def _agent(name: str, agent: Agent, field: str, out: Out) -> str:
    if agent.clearing_system not in CLEARING_SYSTEMS:
        out.add(
            Reason.RC10, field, f"clearing system {agent.clearing_system[:12]!r} is not carried"
        )
        return ""
    member = out.text(agent.member_id, field, ID_LENGTH_MAX)
    nm = (
        ""
        if agent.name is None
        else f"<Nm>{out.cut(agent.name, f'{field}.name', NAME_LENGTH_MAX)}</Nm>"
    )
    if agent.clearing_system == CLEARING_SYSTEM:
        return f"<{name}><BrnchId><Id>{member}</Id></BrnchId>{nm}</{name}>"
    return (
        f"<{name}><ClrSysMmbId><ClrSysId>{agent.clearing_system}</ClrSysId>"
        f"<MmbId>{member}</MmbId></ClrSysMmbId>{nm}</{name}>"
    )
