"""ibps.101 / ibps.102 as Baygate implements them, and the field mapping table.

The IBPS field list is not public. This one is modelled on public CNAPS2 samples (beps.121:
group header with 12-digit direct participants, NbOfTxs, CtrlSum, SysCd; transactions with
TxId, Dbtr/Nm, DbtrAcct/Id/Othr/Id, DbtrAgt/BrnchId/Id, Amt, CtgyPurp/Purp proprietary codes),
plus Baygate's cross-border additions (EndToEndId, UETR, party identification, proxies,
InstdAmt, XchgRate, agents outside CNAPS). Paths are relative to `CstmrCdtTrf`.
"""

from __future__ import annotations

from adapters.mapping import FieldMap, table
from adapters.walk import AMOUNT, TEXT

NS_IBPS101 = "urn:cnaps:std:ibps:2010:tech:xsd:ibps.101.001.01"
NS_IBPS102 = "urn:cnaps:std:ibps:2010:tech:xsd:ibps.102.001.01"
MSG_TYPE_101 = "ibps.101.001.01"
MSG_TYPE_102 = "ibps.102.001.01"
SYSTEM_CODE = "IBPS"
CURRENCY = "CNY"

ID_LENGTH_MAX = 35
NAME_LENGTH_MAX = 60
ACCOUNT_LENGTH_MAX = 32
ADDTL_INF_LENGTH_MAX = 140
REJECT_INFO_LENGTH_MAX = 256

_PARTY = {"Nm": TEXT, "Id": {"Tp": TEXT, "Id": TEXT}}
_ACCOUNT = {"Id": {"Othr": {"Id": TEXT}}, "Prxy": {"Tp": TEXT, "Id": TEXT}}
_AGENT = {"BrnchId": {"Id": TEXT}, "ClrSysMmbId": {"ClrSysId": TEXT, "MmbId": TEXT}, "Nm": TEXT}

GRPHDR_SCHEMA = {
    "MsgId": TEXT,
    "CreDtTm": TEXT,
    "InstgPty": {"InstgDrctPty": TEXT},
    "InstdPty": {"InstdDrctPty": TEXT},
    "NbOfTxs": TEXT,
    "CtrlSum": AMOUNT,
    "SysCd": TEXT,
}
TX_SCHEMA = {
    "TxId": TEXT,
    "EndToEndId": TEXT,
    "UETR": TEXT,
    "ClrSysRef": TEXT,
    "Dbtr": _PARTY,
    "DbtrAcct": _ACCOUNT,
    "DbtrAgt": _AGENT,
    "CdtrAgt": _AGENT,
    "Cdtr": _PARTY,
    "CdtrAcct": _ACCOUNT,
    "Amt": AMOUNT,
    "InstdAmt": AMOUNT,
    "XchgRate": TEXT,
    "PmtTpInf": {"CtgyPurp": {"Prtry": TEXT}},
    "Purp": {"Prtry": TEXT},
    "AddtlInf": TEXT,
}

RECEIPT_GRPHDR_SCHEMA = {
    "MsgId": TEXT,
    "CreDtTm": TEXT,
    "InstgPty": {"InstgDrctPty": TEXT},
    "InstdPty": {"InstdDrctPty": TEXT},
    "SysCd": TEXT,
}
RECEIPT_ORIGINAL_SCHEMA = {"OrgnlMsgId": TEXT, "OrgnlMsgTp": TEXT}
RECEIPT_STATUS_SCHEMA = {
    "OrgnlMsgId": TEXT,
    "OrgnlEndToEndId": TEXT,
    "OrgnlTxId": TEXT,
    "PrcSts": TEXT,
    "RjctCd": TEXT,
    "RjctInf": TEXT,
    "ClrSysRef": TEXT,
}

_TX = "CstmrCdtTrfInf/"
_NAME_RULE = (
    f"Max{NAME_LENGTH_MAX}Text: a longer name (possible from pacs, up to 140) is cut to its "
    f"first {NAME_LENGTH_MAX} characters"
)
_AGENT_RULE = (
    "a CNAPS bank as BrnchId/Id (12 digits); a bank of another clearing system as "
    "ClrSysMmbId/ClrSysId (HKNCC or MOFPS) and ClrSysMmbId/MmbId (Baygate cross-border addition)"
)


def _party_rows(prefix: str, field: str) -> list[FieldMap]:
    return [
        FieldMap(f"{field}.name", (f"{_TX}{prefix}/Nm",), _NAME_RULE),
        FieldMap(
            f"{field}.id",
            (f"{_TX}{prefix}/Id/Tp", f"{_TX}{prefix}/Id/Id"),
            "Tp is HKID, CNRIC, CNUSCC, MOBIR or OTHR (Baygate cross-border addition)",
        ),
        FieldMap(
            f"{field}_account.number",
            (f"{_TX}{prefix}Acct/Id/Othr/Id",),
            f"at most {ACCOUNT_LENGTH_MAX} characters; NOTPROVIDED when only a proxy is known",
        ),
        FieldMap(
            f"{field}_account.proxy",
            (f"{_TX}{prefix}Acct/Prxy/Tp", f"{_TX}{prefix}Acct/Prxy/Id"),
            "Tp MOBN, EMAL or SHID (Baygate cross-border addition)",
        ),
        FieldMap(
            f"{field}_agent",
            (f"{_TX}{prefix}Agt/{{BrnchId/Id,ClrSysMmbId/MmbId}}",),
            _AGENT_RULE,
        ),
        FieldMap(f"{field}_agent.name", (f"{_TX}{prefix}Agt/Nm",), _NAME_RULE),
    ]


IBPS_TABLE = table(
    FieldMap("msg_id", ("GrpHdr/MsgId",), "also in the {H:} header (MesgID); no spaces"),
    FieldMap("created_at", ("GrpHdr/CreDtTm",), "also in the {H:} header as date and time"),
    FieldMap(
        "instructing_member_id",
        ("GrpHdr/InstgPty/InstgDrctPty",),
        "the sending direct participant; outbound: the debtor agent's CNAPS code when every "
        "transaction has the same one, else Baygate's link participant code",
    ),
    FieldMap("end_to_end_id", (f"{_TX}EndToEndId",), "Baygate cross-border addition"),
    FieldMap(
        "tx_id",
        (f"{_TX}TxId",),
        "mandatory in IBPS: when the transfer has no tx_id, its end_to_end_id is written",
    ),
    FieldMap(
        "instr_id",
        (),
        "not written: ISO 20022 defines InstrId as a point-to-point reference between the "
        "instructing and instructed agent, not forwarded to the next party",
    ),
    FieldMap("uetr", (f"{_TX}UETR",), "Baygate cross-border addition"),
    FieldMap(
        "id",
        (f"{_TX}ClrSysRef",),
        "Baygate addition, written in deliveries: the receiver's key to deduplicate a transfer "
        "on and to find the one a notice names, whatever message carried it; receipts "
        "(ibps.102) carry it as ClrSysRef too. Ignored when read: Baygate assigns its own",
        direction="out",
    ),
    FieldMap("amount", (f"{_TX}Amt",), "Ccy must be CNY (any other currency is AM03)"),
    FieldMap(
        "creditor_amount",
        (f"{_TX}Amt",),
        "when set, it is the Amt the receiving provider gets, and the debtor-side amount is "
        "written as InstdAmt (unless instructed_amount is set)",
        direction="out",
    ),
    FieldMap("instructed_amount", (f"{_TX}InstdAmt",), "any supported currency (Baygate addition)"),
    FieldMap("exchange_rate", (f"{_TX}XchgRate",), "decimal string (Baygate addition)"),
    FieldMap("quote_id", (), "Baygate-internal; not written"),
    FieldMap(
        "charge_bearer",
        (),
        "IBPS has no charge bearer: IBPS payments follow the scheme's own charging, which is "
        "what SLEV means. SLEV or none is dropped; DEBT, CRED or SHAR cannot be carried and the "
        "translation fails (NARR). Read as none.",
    ),
    FieldMap("category_purpose", (f"{_TX}PmtTpInf/CtgyPurp/Prtry",), "e.g. A100"),
    FieldMap(
        "priority",
        (),
        "not carried: the modelled ibps.101 has no per-transaction priority (the {H:} header's "
        "one-digit message priority is written as 2 and not read); decoded transfers are normal",
    ),
    FieldMap("purpose", (f"{_TX}Purp/Prtry",), "e.g. 02102"),
    FieldMap(
        "remittance_info",
        (f"{_TX}AddtlInf",),
        f"Max{ADDTL_INF_LENGTH_MAX}Text: longer remittance information cannot be carried and "
        "the translation fails (FF01)",
    ),
    *_party_rows("Dbtr", "debtor"),
    *_party_rows("Cdtr", "creditor"),
    FieldMap("source_scheme", (), "set to cn-ibps when decoding"),
    FieldMap(
        "destination_scheme",
        (),
        "derived from the creditor agent: BrnchId cn-ibps, ClrSysId HKNCC hk-fps, MOFPS mo-fps",
    ),
    FieldMap("extras", (), "Baygate-internal annotations; never written"),
)
