"""pacs.002.001.10: status reports to senders, and status replies from receiving providers.

Rules (also in the scheme docs):
- A report with neither original EndToEndId nor TxId is a group status (GrpSts).
- OrgnlMsgId is mandatory in pacs.002: NOTPROVIDED is written when the original message id is
  unknown (an unreadable message) and read back as None.
- `message` is split into up to 3 AddtlInf of 105 characters; a longer message is cut, and
  characters XML cannot carry become U+FFFD, so a report can always be written.
- A reason code Baygate does not know, or a Prtry reason, is read as NARR with the original
  code at the head of the message.
- Statuses outside ACCP/ACSP/ACSC/PDNG/RJCT are read as their nearest equivalent
  (ACTC/ACWC/ACCC/RCVD: see STATUS_EQUIVALENTS); anything else is malformed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.base import AdapterError, StatusReport, TranslationError
from adapters.checks import NOT_PROVIDED, Problems
from adapters.encoding import Out, iso_datetime
from adapters.pacs.mapping import (
    ADDTL_INF_LENGTH_MAX,
    ADDTL_INF_MAX,
    ID_LENGTH_MAX,
    MSG_NAME_PACS008,
    NS_PACS002,
    STATUS_GROUP_SCHEMA,
    STATUS_TX_SCHEMA,
)
from adapters.walk import compile_schema, flatten
from adapters.xmlsafe import DEFAULT_LIMITS, Writer, XmlLimits, XmlRejected, parse, scrub
from clearing.model import TxStatus
from clearing.reasons import Reason, Rejection

STATUS_EQUIVALENTS = {
    "ACTC": TxStatus.ACCP,  # accepted after technical validation
    "ACWC": TxStatus.ACCP,  # accepted with change
    "ACCC": TxStatus.ACSC,  # settlement completed on the creditor's account
    "RCVD": TxStatus.PDNG,  # received, not yet processed
}
_TX_STATUSES = {s.value: s for s in TxStatus}
MESSAGE_LENGTH_MAX = ADDTL_INF_MAX * ADDTL_INF_LENGTH_MAX
REPORTS_MAX = 10_000

_Q = "{" + NS_PACS002 + "}"
_DOCUMENT, _BODY = _Q + "Document", _Q + "FIToFIPmtStsRpt"
_GRPHDR, _ORIGINAL, _TX = _Q + "GrpHdr", _Q + "OrgnlGrpInfAndSts", _Q + "TxInfAndSts"
_GROUP_NODE = compile_schema(STATUS_GROUP_SCHEMA, NS_PACS002)
_TX_NODE = compile_schema(STATUS_TX_SCHEMA, NS_PACS002)


def encode(
    reports: Sequence[StatusReport], msg_id: str, created_at: datetime, original_msg_id: str | None
) -> bytes:
    out = Out("")
    mid = out.text(msg_id, "msg_id", ID_LENGTH_MAX, required=True)
    created = iso_datetime(created_at, out)
    original = out.text(original_msg_id or NOT_PROVIDED, "original_msg_id", ID_LENGTH_MAX)
    groups = [r for r in reports if r.is_group]
    if len(groups) > 1 or not reports or len(reports) > REPORTS_MAX:
        out.add(Reason.FF01, "reports", f"1 to {REPORTS_MAX} reports, at most one for the group")
    out.raise_if_any()
    w = Writer()
    w.open("Document", f' xmlns="{NS_PACS002}"')
    w.open("FIToFIPmtStsRpt")
    w.open("GrpHdr")
    w.leaf("MsgId", mid or "")
    w.leaf("CreDtTm", created or "")
    w.close("GrpHdr")
    w.open("OrgnlGrpInfAndSts")
    w.leaf("OrgnlMsgId", original or "")
    w.leaf("OrgnlMsgNmId", MSG_NAME_PACS008)
    if groups:
        w.leaf("GrpSts", groups[0].status.value)
        _reason(w, groups[0], out)
    w.close("OrgnlGrpInfAndSts")
    for r in reports:
        if not r.is_group:
            _tx(w, r, original_msg_id, out)
    if out.items:
        raise TranslationError(out.items)
    w.close("FIToFIPmtStsRpt")
    w.close("Document")
    return w.bytes()


def _tx(w: Writer, r: StatusReport, group_original: str | None, out: Out) -> None:
    w.open("TxInfAndSts")
    if r.original_msg_id is not None and r.original_msg_id != group_original:
        w.open("OrgnlGrpInf")
        w.leaf("OrgnlMsgId", out.text(r.original_msg_id, "original_msg_id", ID_LENGTH_MAX) or "")
        w.leaf("OrgnlMsgNmId", MSG_NAME_PACS008)
        w.close("OrgnlGrpInf")
    for name, value, field in (
        ("OrgnlEndToEndId", r.original_end_to_end_id, "original_end_to_end_id"),
        ("OrgnlTxId", r.original_tx_id, "original_tx_id"),
    ):
        if value is not None:
            w.leaf(name, out.text(value, field, ID_LENGTH_MAX) or "")
    w.leaf("TxSts", r.status.value)
    _reason(w, r, out)
    if r.gateway_id is not None:
        w.leaf("ClrSysRef", out.text(r.gateway_id, "gateway_id", ID_LENGTH_MAX) or "")
    w.close("TxInfAndSts")


def _reason(w: Writer, r: StatusReport, out: Out) -> None:
    if r.reason is None and not r.message:
        return
    w.open("StsRsnInf")
    if r.reason is not None:
        w.open("Rsn")
        w.leaf("Cd", r.reason.value)
        w.close("Rsn")
    message = scrub((r.message or "")[:MESSAGE_LENGTH_MAX])
    for start in range(0, len(message), ADDTL_INF_LENGTH_MAX):
        chunk = message[start : start + ADDTL_INF_LENGTH_MAX]
        w.leaf("AddtlInf", out.piece(chunk, "message", ADDTL_INF_LENGTH_MAX) or "")
    w.close("StsRsnInf")


def decode(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> list[StatusReport]:
    try:
        root = parse(data, limits)
    except XmlRejected as exc:
        raise AdapterError(exc.rejection) from None
    body = root[0] if root.tag == _DOCUMENT and len(root) == 1 else None
    if body is None or body.tag != _BODY:
        raise _malformed("Document", "expected a pacs.002.001.10 FIToFIPmtStsRpt")
    group_original, reports = None, []
    for c in body:
        if c.tag == _ORIGINAL and group_original is None:
            g = _flat(c, _GROUP_NODE, "OrgnlGrpInfAndSts")
            group_original = _none_if_placeholder(g.get("OrgnlMsgId"))
            if g.get("GrpSts") is not None:
                reports.append(
                    _report(g, "GrpSts", group_original, None, None, "OrgnlGrpInfAndSts")
                )
        elif c.tag == _TX:
            where = f"TxInfAndSts[{len(reports) + 1}]"
            t = _flat(c, _TX_NODE, where)
            original = _none_if_placeholder(t.get("OrgnlGrpInf/OrgnlMsgId")) or group_original
            e2e, txid = _strip(t.get("OrgnlEndToEndId")), _strip(t.get("OrgnlTxId"))
            if e2e is None and txid is None:
                raise _malformed(where, "OrgnlEndToEndId or OrgnlTxId is required")
            reports.append(
                _report(t, "TxSts", original, e2e, txid, where, _strip(t.get("ClrSysRef")))
            )
        if len(reports) > REPORTS_MAX:
            raise _malformed("TxInfAndSts", f"more than {REPORTS_MAX} statuses")
    if not reports:
        raise _malformed("FIToFIPmtStsRpt", "no GrpSts and no TxInfAndSts: nothing to report")
    return reports


def _flat(el: Any, node: Any, where: str) -> dict[str, Any]:
    probs = Problems(where)
    f = flatten(el, node, probs, strict=False)
    if probs:
        raise AdapterError(probs.items[0])
    return f


def _report(
    f: dict[str, Any],
    status_key: str,
    original: str | None,
    e2e: str | None,
    txid: str | None,
    where: str,
    gateway_id: str | None = None,
) -> StatusReport:
    code = _strip(f.get(status_key)) or ""
    status = STATUS_EQUIVALENTS.get(code) or _TX_STATUSES.get(code)
    if status is None:
        raise _malformed(f"{where}/{status_key}", "status is missing or unknown")
    reason, message = read_reason(
        _strip(f.get("StsRsnInf/Rsn/Cd")) or _strip(f.get("StsRsnInf/Rsn/Prtry")),
        "".join(v for v in f.get("StsRsnInf/AddtlInf", []) if v),
    )
    return StatusReport(original, e2e, txid, status, reason, message, gateway_id)


def read_reason(code: str | None, message: str) -> tuple[Reason | None, str | None]:
    """A known ISO reason as is; anything else as NARR with the original code kept in front."""
    if code is None:
        return None, message or None
    try:
        return Reason(code), message or None
    except ValueError:
        return Reason.NARR, f"{code[:35]}: {message}" if message else code[:35]


def _strip(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _none_if_placeholder(value: str | None) -> str | None:
    value = _strip(value)
    return None if value == NOT_PROVIDED else value


def _malformed(path: str, message: str) -> AdapterError:
    return AdapterError(Rejection(Reason.FF01, message, path))
