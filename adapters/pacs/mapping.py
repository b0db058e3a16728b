"""pacs.008.001.08 / pacs.002.001.10: the elements Baygate reads, and the field mapping table.

The element trees below are what the decoder accepts; anything else in a transaction is
refused with FF01 so that it cannot be lost silently in translation. Paths in the table are
relative to `FIToFICstmrCdtTrf`.
"""

from __future__ import annotations

from adapters.mapping import FieldMap, table
from adapters.walk import AMOUNT, TEXT, Leaf

NS_PACS008 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
NS_PACS002 = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"
MSG_NAME_PACS008 = "pacs.008.001.08"

USTRD_MAX = 4  # RmtInf/Ustrd occurrences read and written
USTRD_LENGTH_MAX = 140
ADDTL_INF_MAX = 3  # StsRsnInf/AddtlInf occurrences written
ADDTL_INF_LENGTH_MAX = 105
NAME_LENGTH_MAX = 140
ID_LENGTH_MAX = 35
ACCOUNT_LENGTH_MAX = 34

_CODE = {"Cd": TEXT, "Prtry": TEXT}
_OTHR_ID = {"Othr": {"Id": TEXT, "SchmeNm": {"Prtry": TEXT}}}
_PARTY = {"Nm": TEXT, "Id": {"OrgId": _OTHR_ID, "PrvtId": _OTHR_ID}}
_ACCOUNT = {"Id": {"Othr": {"Id": TEXT}}, "Prxy": {"Tp": {"Cd": TEXT}, "Id": TEXT}}
_AGENT = {"FinInstnId": {"ClrSysMmbId": {"ClrSysId": _CODE, "MmbId": TEXT}, "Nm": TEXT}}

# PmtTpInf/InstrPrty (ISO 20022 Priority2Code) <-> Transfer.priority.
INSTRUCTION_PRIORITY = {"HIGH": "urgent", "NORM": "normal"}
PRIORITY_CODE = {v: k for k, v in INSTRUCTION_PRIORITY.items()}

GRPHDR_SCHEMA = {
    "MsgId": TEXT,
    "CreDtTm": TEXT,
    "NbOfTxs": TEXT,
    "CtrlSum": TEXT,
    "SttlmInf": {"SttlmMtd": TEXT, "ClrSys": _CODE},
    "InstgAgt": _AGENT,
    "InstdAgt": _AGENT,
}
TX_SCHEMA = {
    "PmtId": {"InstrId": TEXT, "EndToEndId": TEXT, "TxId": TEXT, "UETR": TEXT, "ClrSysRef": TEXT},
    "PmtTpInf": {"InstrPrty": TEXT, "CtgyPurp": _CODE},
    "IntrBkSttlmAmt": AMOUNT,
    "InstdAmt": AMOUNT,
    "XchgRate": TEXT,
    "ChrgBr": TEXT,
    "InstgAgt": _AGENT,
    "InstdAgt": _AGENT,
    "Dbtr": _PARTY,
    "DbtrAcct": _ACCOUNT,
    "DbtrAgt": _AGENT,
    "CdtrAgt": _AGENT,
    "Cdtr": _PARTY,
    "CdtrAcct": _ACCOUNT,
    "Purp": _CODE,
    "RmtInf": {"Ustrd": Leaf(multi_max=USTRD_MAX)},
}

_REASON = {"Rsn": _CODE, "AddtlInf": Leaf(multi_max=10)}
_ORIGINAL_GROUP = {
    "OrgnlMsgId": TEXT,
    "OrgnlMsgNmId": TEXT,
    "OrgnlCreDtTm": TEXT,
    "OrgnlNbOfTxs": TEXT,
    "OrgnlCtrlSum": TEXT,
    "GrpSts": TEXT,
    "StsRsnInf": _REASON,
}
STATUS_TX_SCHEMA = {
    "StsId": TEXT,
    "OrgnlGrpInf": {"OrgnlMsgId": TEXT, "OrgnlMsgNmId": TEXT},
    "OrgnlInstrId": TEXT,
    "OrgnlEndToEndId": TEXT,
    "OrgnlTxId": TEXT,
    "OrgnlUETR": TEXT,
    "TxSts": TEXT,
    "StsRsnInf": _REASON,
    "ClrSysRef": TEXT,
}
STATUS_GROUP_SCHEMA = _ORIGINAL_GROUP

_TX = "CdtTrfTxInf/"
_CODE_RULE = "written as Cd when it is 4 capital letters (an ISO external code), else as Prtry"
_NAME_RULE = (
    f"at most {NAME_LENGTH_MAX} characters; a longer name is cut to its first {NAME_LENGTH_MAX}"
)
_ID_RULE = (
    "SchmeNm/Prtry holds the type: HKID, CNRIC, MOBIR or OTHR under PrvtId; CNUSCC under OrgId"
)
_NUMBER_RULE = "NOTPROVIDED is written (and read back as no number) when only a proxy is known"
_AGENT_RULE = (
    "ClrSysId/Cd HKNCC (3 digits) for Hong Kong banks, ClrSysId/Cd CNAPS (12 digits) for "
    "Mainland banks, ClrSysId/Prtry MOFPS (3 digits) for Macau banks"
)


def _party_rows(prefix: str, field: str) -> list[FieldMap]:
    return [
        FieldMap(f"{field}.name", (f"{_TX}{prefix}/Nm",), _NAME_RULE),
        FieldMap(
            f"{field}.id",
            (
                f"{_TX}{prefix}/Id/{{PrvtId,OrgId}}/Othr/Id",
                f"{_TX}{prefix}/Id/{{PrvtId,OrgId}}/Othr/SchmeNm/Prtry",
            ),
            _ID_RULE,
        ),
        FieldMap(f"{field}_account.number", (f"{_TX}{prefix}Acct/Id/Othr/Id",), _NUMBER_RULE),
        FieldMap(
            f"{field}_account.proxy",
            (f"{_TX}{prefix}Acct/Prxy/Tp/Cd", f"{_TX}{prefix}Acct/Prxy/Id"),
            "Tp/Cd is MOBN (+852-, +86-, +853- numbers), EMAL or SHID (FPS ID)",
        ),
        FieldMap(
            f"{field}_agent",
            (
                f"{_TX}{prefix}Agt/FinInstnId/ClrSysMmbId/ClrSysId/{{Cd,Prtry}}",
                f"{_TX}{prefix}Agt/FinInstnId/ClrSysMmbId/MmbId",
            ),
            _AGENT_RULE,
        ),
        FieldMap(f"{field}_agent.name", (f"{_TX}{prefix}Agt/FinInstnId/Nm",), _NAME_RULE),
    ]


PACS_TABLE = table(
    FieldMap("msg_id", ("GrpHdr/MsgId",)),
    FieldMap("created_at", ("GrpHdr/CreDtTm",), "ISO 8601 date-time, UTC offset kept as sent"),
    FieldMap(
        "instructing_member_id",
        ("GrpHdr/InstgAgt/FinInstnId/ClrSysMmbId/MmbId",),
        "when absent, the first transaction's DbtrAgt member id",
        direction="in",
    ),
    FieldMap("end_to_end_id", (f"{_TX}PmtId/EndToEndId",)),
    FieldMap("tx_id", (f"{_TX}PmtId/TxId",)),
    FieldMap("instr_id", (f"{_TX}PmtId/InstrId",)),
    FieldMap("uetr", (f"{_TX}PmtId/UETR",)),
    FieldMap(
        "id",
        (f"{_TX}PmtId/ClrSysRef",),
        "a ClrSysRef in an inbound message is ignored: Baygate is the clearing system and "
        "assigns its own",
        direction="out",
    ),
    FieldMap("amount", (f"{_TX}IntrBkSttlmAmt",), "with its Ccy attribute"),
    FieldMap(
        "creditor_amount",
        (f"{_TX}IntrBkSttlmAmt",),
        "when set, it is the IntrBkSttlmAmt the receiving provider gets, and the debtor-side "
        "amount is written as InstdAmt (unless instructed_amount is set)",
        direction="out",
    ),
    FieldMap("instructed_amount", (f"{_TX}InstdAmt",), "any supported currency"),
    FieldMap("exchange_rate", (f"{_TX}XchgRate",), "decimal string as given"),
    FieldMap("quote_id", (), "Baygate-internal; not written"),
    FieldMap(
        "charge_bearer",
        (f"{_TX}ChrgBr",),
        "mandatory in pacs.008: SLEV is written when the transfer has none (from cn-ibps)",
    ),
    FieldMap("category_purpose", (f"{_TX}PmtTpInf/CtgyPurp/{{Cd,Prtry}}",), _CODE_RULE),
    FieldMap(
        "priority",
        (f"{_TX}PmtTpInf/InstrPrty",),
        "Priority2Code: HIGH is urgent, NORM (or no InstrPrty) normal; written only as HIGH",
    ),
    FieldMap("purpose", (f"{_TX}Purp/{{Cd,Prtry}}",), _CODE_RULE),
    FieldMap(
        "remittance_info",
        (f"{_TX}RmtInf/Ustrd",),
        f"split into up to {USTRD_MAX} Ustrd of {USTRD_LENGTH_MAX} characters; several Ustrd "
        "are joined without separator when read",
    ),
    *_party_rows("Dbtr", "debtor"),
    *_party_rows("Cdtr", "creditor"),
    FieldMap("source_scheme", (), "set to this scheme when decoding"),
    FieldMap(
        "destination_scheme",
        (),
        "derived from the creditor agent's clearing system: HKNCC hk-fps, CNAPS cn-ibps, "
        "MOFPS mo-fps",
    ),
    FieldMap("extras", (), "Baygate-internal annotations; never written"),
)
