"""ibps.102 receipts: Baygate's answer to a Mainland sender, and a Mainland provider's reply.

IBPS reports processing status with its own codes (PrcSts). The table below is Baygate's
assumption, documented in docs/schemes/cn-ibps.md. Reject reasons are carried as ISO 20022
status reason codes in RjctCd (the IBPS reject code list is not public); an unknown code is
read as NARR with the code kept at the head of the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.base import AdapterError, StatusReport, TranslationError
from adapters.checks import NOT_PROVIDED, Problems
from adapters.cn_ibps import envelope
from adapters.cn_ibps.mapping import (
    ID_LENGTH_MAX,
    MSG_TYPE_101,
    MSG_TYPE_102,
    NS_IBPS102,
    RECEIPT_GRPHDR_SCHEMA,
    RECEIPT_ORIGINAL_SCHEMA,
    RECEIPT_STATUS_SCHEMA,
    REJECT_INFO_LENGTH_MAX,
    SYSTEM_CODE,
)
from adapters.encoding import Out, iso_datetime
from adapters.pacs.status import read_reason
from adapters.walk import compile_schema, flatten
from adapters.xmlsafe import Writer, XmlLimits, XmlRejected, parse, scrub
from clearing.model import TxStatus
from clearing.reasons import Reason, Rejection

PROCESSING_STATUS = {
    TxStatus.ACCP: "PR00",  # accepted (已受理)
    TxStatus.PDNG: "PR01",  # queued (排队)
    TxStatus.ACSC: "PR02",  # paid (已付款)
    TxStatus.ACSP: "PR03",  # netted, settlement in progress (已轧差)
    TxStatus.RJCT: "PR09",  # rejected (已拒绝)
}
STATUS_OF_CODE = {code: status for status, code in PROCESSING_STATUS.items()}
REPORTS_MAX = 10_000

_Q = "{" + NS_IBPS102 + "}"
_DOCUMENT, _BODY = _Q + "Document", _Q + "CstmrCdtTrfRct"
_GRPHDR, _ORIGINAL, _GROUP, _TX = (_Q + n for n in ("GrpHdr", "OrgnlGrpInf", "GrpRct", "TxRct"))
_GRPHDR_NODE = compile_schema(RECEIPT_GRPHDR_SCHEMA, NS_IBPS102)
_ORIGINAL_NODE = compile_schema(RECEIPT_ORIGINAL_SCHEMA, NS_IBPS102)
_STATUS_NODE = compile_schema(RECEIPT_STATUS_SCHEMA, NS_IBPS102)


def encode(
    reports: Sequence[StatusReport],
    msg_id: str,
    created_at: datetime,
    original_msg_id: str | None,
    sender: str,
    receiver: str | None,
) -> bytes:
    """`sender` is Baygate's link participant; `receiver` the original sender, when known."""
    out = Out("")
    mid = out.text(msg_id, "msg_id", ID_LENGTH_MAX, required=True)
    created = iso_datetime(created_at, out)
    original = out.text(original_msg_id or NOT_PROVIDED, "original_msg_id", ID_LENGTH_MAX)
    groups = [r for r in reports if r.is_group]
    if len(groups) > 1 or not reports or len(reports) > REPORTS_MAX:
        out.add(Reason.FF01, "reports", f"1 to {REPORTS_MAX} reports, at most one for the group")
    out.raise_if_any()
    w = Writer()
    w.open("Document", f' xmlns="{NS_IBPS102}"')
    w.open("CstmrCdtTrfRct")
    w.open("GrpHdr")
    w.leaf("MsgId", mid or "")
    w.leaf("CreDtTm", created or "")
    w.open("InstgPty")
    w.leaf("InstgDrctPty", sender)
    w.close("InstgPty")
    if receiver is not None:
        w.open("InstdPty")
        w.leaf("InstdDrctPty", receiver)
        w.close("InstdPty")
    w.leaf("SysCd", SYSTEM_CODE)
    w.close("GrpHdr")
    w.open("OrgnlGrpInf")
    w.leaf("OrgnlMsgId", original or "")
    w.leaf("OrgnlMsgTp", MSG_TYPE_101)
    w.close("OrgnlGrpInf")
    for r in groups:
        _status(w, "GrpRct", r, None, out)
    for r in reports:
        if not r.is_group:
            _status(w, "TxRct", r, original_msg_id, out)
    if out.items:
        raise TranslationError(out.items)
    w.close("CstmrCdtTrfRct")
    w.close("Document")
    header = envelope.Header(
        sender=sender,
        receiver=receiver or "",
        send_date=envelope.date_field(created_at),
        send_time=envelope.time_field(created_at),
        msg_type=MSG_TYPE_102,
        msg_id=msg_id,
        ref_id=original_msg_id or msg_id,
        direction="D",
    )
    return envelope.wrap(header, w.bytes())


def _status(w: Writer, name: str, r: StatusReport, group_original: str | None, out: Out) -> None:
    w.open(name)
    if name == "TxRct" and r.original_msg_id is not None and r.original_msg_id != group_original:
        w.leaf("OrgnlMsgId", out.text(r.original_msg_id, "original_msg_id", ID_LENGTH_MAX) or "")
    for element, value, field in (
        ("OrgnlEndToEndId", r.original_end_to_end_id, "original_end_to_end_id"),
        ("OrgnlTxId", r.original_tx_id, "original_tx_id"),
    ):
        if value is not None:
            w.leaf(element, out.text(value, field, ID_LENGTH_MAX) or "")
    w.leaf("PrcSts", PROCESSING_STATUS[r.status])
    if r.reason is not None:
        w.leaf("RjctCd", r.reason.value)
    if r.message:
        info = scrub(r.message[:REJECT_INFO_LENGTH_MAX])
        w.leaf("RjctInf", out.piece(info, "message", REJECT_INFO_LENGTH_MAX) or "")
    if r.gateway_id is not None and name == "TxRct":
        w.leaf("ClrSysRef", out.text(r.gateway_id, "gateway_id", ID_LENGTH_MAX) or "")
    w.close(name)


def decode(data: bytes, limits: XmlLimits) -> list[StatusReport]:
    env = envelope.split(data, limits.size_bytes_max)
    if env.header.msg_type != MSG_TYPE_102:
        raise _malformed("{H:}/msg_type", f"header MesgType must be {MSG_TYPE_102}")
    try:
        root = parse(env.body, limits)
    except XmlRejected as exc:
        raise AdapterError(exc.rejection) from None
    body = root[0] if root.tag == _DOCUMENT and len(root) == 1 else None
    if body is None or body.tag != _BODY:
        raise _malformed("Document", f"expected an {MSG_TYPE_102} CstmrCdtTrfRct")
    group_original, reports = None, []
    for c in body:
        if c.tag == _ORIGINAL:
            group_original = _none_if_placeholder(
                _flat(c, _ORIGINAL_NODE, "OrgnlGrpInf").get("OrgnlMsgId")
            )
        elif c.tag == _GROUP:
            reports.append(
                _report(_flat(c, _STATUS_NODE, "GrpRct"), group_original, "GrpRct", group=True)
            )
        elif c.tag == _TX:
            where = f"TxRct[{len(reports) + 1}]"
            reports.append(
                _report(_flat(c, _STATUS_NODE, where), group_original, where, group=False)
            )
        if len(reports) > REPORTS_MAX:
            raise _malformed("TxRct", f"more than {REPORTS_MAX} receipts")
    if not reports:
        raise _malformed("CstmrCdtTrfRct", "no GrpRct and no TxRct: nothing to report")
    return reports


def _report(
    f: dict[str, Any], group_original: str | None, where: str, *, group: bool
) -> StatusReport:
    status = STATUS_OF_CODE.get((f.get("PrcSts") or "").strip())
    if status is None:
        raise _malformed(f"{where}/PrcSts", "processing status is missing or unknown")
    e2e, txid = _strip(f.get("OrgnlEndToEndId")), _strip(f.get("OrgnlTxId"))
    if not group and e2e is None and txid is None:
        raise _malformed(where, "OrgnlEndToEndId or OrgnlTxId is required")
    reason, message = read_reason(_strip(f.get("RjctCd")), f.get("RjctInf") or "")
    original = _none_if_placeholder(f.get("OrgnlMsgId")) or group_original
    return StatusReport(original, e2e, txid, status, reason, message, _strip(f.get("ClrSysRef")))


def _flat(el: Any, node: Any, where: str) -> dict[str, Any]:
    probs = Problems(where)
    f = flatten(el, node, probs, strict=False)
    if probs:
        raise AdapterError(probs.items[0])
    return f


def _strip(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _none_if_placeholder(value: str | None) -> str | None:
    value = _strip(value)
    return None if value == NOT_PROVIDED else value


def _malformed(path: str, message: str) -> AdapterError:
    return AdapterError(Rejection(Reason.FF01, message, path))
