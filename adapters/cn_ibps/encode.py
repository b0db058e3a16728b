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
from adapters.encoding import Out, amount_attr, instructed, iso_datetime, settlement
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
    money = settlement(t, CURRENCIES, SCHEME, out)
    if t.charge_bearer not in CHARGE_BEARERS_CARRIED:
        out.add(
            Reason.NARR,
            "charge_bearer",
            f"cn-ibps cannot carry charge bearer {t.charge_bearer!r}: IBPS charges follow the scheme (SLEV only)",
        )
    w.open("CstmrCdtTrfInf")
    w.leaf("TxId", out.text(t.tx_id or t.end_to_end_id, "tx_id", ID_LENGTH_MAX) or "")
    w.leaf(
        "EndToEndId", out.text(t.end_to_end_id, "end_to_end_id", ID_LENGTH_MAX, required=True) or ""
    )
    if t.uetr is not None:
        w.leaf("UETR", out.text(t.uetr, "uetr", 36) or "")
    _party(w, "Dbtr", t.debtor, "debtor", out)
    _account(w, "DbtrAcct", t.debtor_account, "debtor_account", out)
    _agent(w, "DbtrAgt", t.debtor_agent, "debtor_agent", out)
    if t.creditor_agent is None:
        out.add(Reason.RC10, "creditor_agent", "the receiving provider must be known to encode")
    else:
        _agent(w, "CdtrAgt", t.creditor_agent, "creditor_agent", out)
    _party(w, "Cdtr", t.creditor, "creditor", out)
    _account(w, "CdtrAcct", t.creditor_account, "creditor_account", out)
    if money is not None:
        w.leaf("Amt", money.format(), amount_attr(money))
    instd = instructed(t)
    if instd is not None:
        w.leaf("InstdAmt", instd.format(), amount_attr(instd))
    if t.exchange_rate is not None:
        w.leaf("XchgRate", out.text(t.exchange_rate, "exchange_rate", 22) or "")
    if t.category_purpose is not None:
        w.open("PmtTpInf")
        _prtry(w, "CtgyPurp", t.category_purpose, "category_purpose", out)
        w.close("PmtTpInf")
    if t.purpose is not None:
        _prtry(w, "Purp", t.purpose, "purpose", out)
    if t.remittance_info is not None:
        w.leaf(
            "AddtlInf", out.text(t.remittance_info, "remittance_info", ADDTL_INF_LENGTH_MAX) or ""
        )
    w.close("CstmrCdtTrfInf")
    return money


def _prtry(w: Writer, name: str, value: str, field: str, out: Out) -> None:
    w.open(name)
    w.leaf("Prtry", out.text(value, field, ID_LENGTH_MAX) or "")
    w.close(name)


def _party(w: Writer, name: str, party: Party, field: str, out: Out) -> None:
    w.open(name)
    w.leaf("Nm", out.cut(party.name, f"{field}.name", NAME_LENGTH_MAX) or "")
    if party.id is not None:
        w.open("Id")
        w.leaf("Tp", party.id.type.value)
        w.leaf("Id", out.text(party.id.value, f"{field}.id", ID_LENGTH_MAX) or "")
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
        w.leaf("Tp", account.proxy.type.value)
        w.leaf("Id", out.text(account.proxy.value, f"{field}.proxy", PROXY_ID_LENGTH_MAX) or "")
        w.close("Prxy")
    w.close(name)


def _agent(w: Writer, name: str, agent: Agent, field: str, out: Out) -> None:
    if agent.clearing_system not in CLEARING_SYSTEMS:
        out.add(
            Reason.RC10, field, f"clearing system {agent.clearing_system[:12]!r} is not carried"
        )
        return
    member = out.text(agent.member_id, field, ID_LENGTH_MAX) or ""
    w.open(name)
    if agent.clearing_system == CLEARING_SYSTEM:
        w.open("BrnchId")
        w.leaf("Id", member)
        w.close("BrnchId")
    else:
        w.open("ClrSysMmbId")
        w.leaf("ClrSysId", agent.clearing_system)
        w.leaf("MmbId", member)
        w.close("ClrSysMmbId")
    if agent.name is not None:
        w.leaf("Nm", out.cut(agent.name, f"{field}.name", NAME_LENGTH_MAX) or "")
    w.close(name)
