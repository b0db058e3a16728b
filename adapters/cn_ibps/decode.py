"""ibps.101 (envelope + document) -> canonical transfers, every transaction, problems as data.

Beyond the document's own checks, the {H:} header must agree with it: message type, MsgId
and the sending direct participant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters import checks
from adapters import identifiers as ids
from adapters.base import AdapterError, DecodedMessage, DecodedTx
from adapters.checks import Problems, text_field
from adapters.cn_ibps import envelope
from adapters.cn_ibps.identifiers import CLEARING_SYSTEM, member_id_error
from adapters.cn_ibps.mapping import (
    ADDTL_INF_LENGTH_MAX,
    CURRENCY,
    GRPHDR_SCHEMA,
    ID_LENGTH_MAX,
    MSG_TYPE_101,
    NAME_LENGTH_MAX,
    NS_IBPS101,
    SYSTEM_CODE,
    TX_SCHEMA,
)
from adapters.walk import Reader
from adapters.xmlsafe import XmlLimits, XmlRejected, local, parse
from clearing.model import Account, Agent, Party, Transfer
from clearing.reasons import Reason, Rejection

SCHEME = "cn-ibps"
CURRENCIES = frozenset({CURRENCY})
_Q = "{" + NS_IBPS101 + "}"
_DOCUMENT, _BODY, _GRPHDR, _TX = (
    _Q + n for n in ("Document", "CstmrCdtTrf", "GrpHdr", "CstmrCdtTrfInf")
)
_GRPHDR_READER = Reader(GRPHDR_SCHEMA, NS_IBPS101)
_TX_READER = Reader(TX_SCHEMA, NS_IBPS101)


def decode(data: bytes, limits: XmlLimits, txs_max: int) -> DecodedMessage:
    try:
        env = envelope.split(data, limits.size_bytes_max)
        root = parse(env.body, limits)
    except AdapterError as exc:
        return _refused(exc.rejection)
    except XmlRejected as exc:
        return _refused(exc.rejection)
    if env.header.msg_type != MSG_TYPE_101:
        return _refused(
            Rejection(Reason.FF01, f"header MesgType must be {MSG_TYPE_101}", "{H:}/msg_type")
        )
    if root.tag != _DOCUMENT:
        found = root.tag.partition("}")[0].lstrip("{") if isinstance(root.tag, str) else "?"
        return _refused(
            Rejection(
                Reason.FF01,
                f"expected an {MSG_TYPE_101} Document, found {found[:80]!r}",
                "Document",
            )
        )
    body = list(root)
    if len(body) != 1 or body[0].tag != _BODY:
        return _refused(Rejection(Reason.FF01, "Document must hold one CstmrCdtTrf", "Document"))
    header, tx_els, mp = None, [], Problems("")
    for c in body[0]:
        if c.tag == _TX:
            tx_els.append(c)
        elif c.tag == _GRPHDR and header is None:
            header = c
        else:
            mp.add(Reason.FF01, local(c.tag), "element is not supported here (or repeated)")
    if header is None:
        mp.add(Reason.FF01, "GrpHdr", "GrpHdr is required")
    if not tx_els or len(tx_els) > txs_max:
        mp.add(Reason.FF01, "CstmrCdtTrfInf", f"a message holds 1 to {txs_max} CstmrCdtTrfInf")
    if mp:
        return _refused(*mp.items)
    return _decode_body(env.header, header, tx_els)


def _decode_body(env_header: envelope.Header, header: Any, tx_els: list[Any]) -> DecodedMessage:
    hp = Problems("GrpHdr")
    h = _GRPHDR_READER.flatten(header, hp)
    msg_id = text_field(h.get("MsgId"), "MsgId", hp, length_max=ID_LENGTH_MAX)
    created_at = checks.iso_datetime(h.get("CreDtTm"), "CreDtTm", hp)
    instructing = _participant(h.get("InstgPty/InstgDrctPty"), "InstgPty/InstgDrctPty", hp)
    _participant(h.get("InstdPty/InstdDrctPty"), "InstdPty/InstdDrctPty", hp)
    if (h.get("SysCd") or "").strip() != SYSTEM_CODE:
        hp.add(Reason.FF01, "SysCd", f"SysCd must be {SYSTEM_CODE}")
    if msg_id is not None and env_header.msg_id != msg_id:
        hp.add(Reason.FF01, "MsgId", "MsgId differs from the {H:} header's MesgID")
    if instructing is not None and env_header.sender != instructing:
        hp.add(Reason.FF01, "InstgPty/InstgDrctPty", "differs from the {H:} header's OrigSender")

    reader = _TxReader(msg_id or "", created_at)
    decoded = [reader.read(i, el) for i, el in enumerate(tx_els)]
    txs = checks.refuse_duplicates([d for d, _ in decoded], "CstmrCdtTrfInf[{n}]/EndToEndId")
    checks.count(h.get("NbOfTxs"), len(tx_els), "NbOfTxs", hp)
    if h.get("CtrlSum/@Ccy") != CURRENCY:
        hp.add(Reason.FF01, "CtrlSum", f"CtrlSum with Ccy={CURRENCY} is required")
    else:
        checks.ctrl_sum(h.get("CtrlSum") or "", [a for _, a in decoded], "CtrlSum", hp)
    return DecodedMessage(
        scheme=SCHEME,
        msg_id=msg_id,
        instructing_member_id=instructing,
        created_at=created_at,
        error=hp.items[0] if hp else None,
        txs=tuple(txs),
        more_errors=tuple(hp.items[1:]),
    )


def _participant(value: str | None, where: str, hp: Problems) -> str | None:
    value = (value or "").strip()
    error = member_id_error(value) if value else f"{where.rpartition('/')[2]} is required"
    if error is not None:
        hp.add(Reason.FF01, where, error)
        return None
    return value


def _refused(first: Rejection, *more: Rejection) -> DecodedMessage:
    return DecodedMessage(SCHEME, None, None, None, first, (), more_errors=more)


class _TxReader:
    def __init__(self, msg_id: str, created_at: datetime | None) -> None:
        self.msg_id = msg_id
        self.created_at = created_at

    def read(self, i: int, el: Any) -> tuple[DecodedTx, str | None]:
        """The decoded transaction and its amount text (for CtrlSum)."""
        p = Problems(f"CstmrCdtTrfInf[{i + 1}]")
        f = _TX_READER.flatten(el, p)
        tx_id = text_field(f.get("TxId"), "TxId", p, length_max=ID_LENGTH_MAX)
        e2e = text_field(f.get("EndToEndId"), "EndToEndId", p, length_max=ID_LENGTH_MAX)
        uetr = checks.uetr(f.get("UETR"), "UETR", p)
        ref = (f.get("ClrSysRef") or "").strip() or None
        amount = checks.amount(f.get("Amt"), f.get("Amt/@Ccy"), "Amt", p, CURRENCIES)
        instructed = None
        if "InstdAmt" in f:
            instructed = checks.amount(f["InstdAmt"], f.get("InstdAmt/@Ccy"), "InstdAmt", p, None)
        rate = checks.exchange_rate(f.get("XchgRate"), "XchgRate", p)
        category = _prtry(f, "PmtTpInf/CtgyPurp", p)
        purpose = _prtry(f, "Purp", p)
        remittance = text_field(
            f.get("AddtlInf"), "AddtlInf", p, length_max=ADDTL_INF_LENGTH_MAX, required=False
        )
        debtor, creditor = _party(f, "Dbtr", p), _party(f, "Cdtr", p)
        debtor_agent = _agent(f, "DbtrAgt", p, creditor=False)
        creditor_agent = _agent(f, "CdtrAgt", p, creditor=True) if "CdtrAgt" in f else None
        debtor_account = _account(f, "DbtrAcct", p, debtor_agent)
        creditor_account = _account(f, "CdtrAcct", p, creditor_agent)
        if "CdtrAgt" not in f and (creditor_account is None or creditor_account.proxy is None):
            p.add(
                Reason.RC10, "CdtrAgt", "CdtrAgt is required unless CdtrAcct/Prxy names the payee"
            )
        if p or e2e is None:
            return DecodedTx(i, e2e, tx_id, None, tuple(p.items), ref), f.get("Amt")
        transfer = Transfer(
            msg_id=self.msg_id,
            end_to_end_id=e2e,
            source_scheme=SCHEME,
            amount=amount,  # type: ignore[arg-type]
            debtor=debtor,  # type: ignore[arg-type]
            debtor_account=debtor_account,  # type: ignore[arg-type]
            debtor_agent=debtor_agent,  # type: ignore[arg-type]
            creditor=creditor,  # type: ignore[arg-type]
            creditor_account=creditor_account,  # type: ignore[arg-type]
            creditor_agent=creditor_agent,
            destination_scheme=ids.scheme_of(creditor_agent.clearing_system)
            if creditor_agent
            else None,
            tx_id=tx_id,
            uetr=uetr,
            instructed_amount=instructed,
            exchange_rate=rate,
            purpose=purpose,
            category_purpose=category,
            remittance_info=remittance,
            created_at=self.created_at,
        )
        return DecodedTx(i, e2e, tx_id, transfer, (), ref), f.get("Amt")


def _prtry(f: dict[str, Any], where: str, p: Problems) -> str | None:
    if where not in f:
        return None
    return text_field(f.get(f"{where}/Prtry"), f"{where}/Prtry", p, length_max=ID_LENGTH_MAX)


def _party(f: dict[str, Any], where: str, p: Problems) -> Party | None:
    if where not in f:
        p.add(Reason.FF01, where, f"{where} is required")
        return None
    name = text_field(f.get(f"{where}/Nm"), f"{where}/Nm", p, length_max=NAME_LENGTH_MAX)
    pid = None
    if f"{where}/Id" in f:
        pid = checks.party_id(f.get(f"{where}/Id/Tp"), f.get(f"{where}/Id/Id"), f"{where}/Id", p)
    return Party(name, pid) if name is not None else None


def _agent(f: dict[str, Any], where: str, p: Problems, *, creditor: bool) -> Agent | None:
    if where not in f:
        p.add(Reason.FF01, where, f"{where} is required")
        return None
    name = text_field(
        f.get(f"{where}/Nm"), f"{where}/Nm", p, length_max=NAME_LENGTH_MAX, required=False
    )
    branch, member = f"{where}/BrnchId", f"{where}/ClrSysMmbId"
    if (branch in f) == (member in f):
        p.add(
            Reason.RC10 if creditor else Reason.FF01,
            where,
            "exactly one of BrnchId or ClrSysMmbId is required",
        )
        return None
    if branch in f:
        return checks.agent(
            CLEARING_SYSTEM, f.get(f"{branch}/Id"), name, f"{branch}/Id", p, creditor=creditor
        )
    return checks.agent(
        f.get(f"{member}/ClrSysId"), f.get(f"{member}/MmbId"), name, member, p, creditor=creditor
    )


def _account(f: dict[str, Any], where: str, p: Problems, holder: Agent | None) -> Account | None:
    if where not in f:
        p.add(Reason.AC01, where, f"{where} is required")
        return None
    ptype, pval = f.get(f"{where}/Prxy/Tp"), f.get(f"{where}/Prxy/Id")
    if f"{where}/Prxy" in f and ptype is None and pval is None:
        ptype = ""
    return checks.account(f.get(f"{where}/Id/Othr/Id"), ptype, pval, holder, where, p)
