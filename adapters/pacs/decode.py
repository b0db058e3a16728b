"""pacs.008.001.08 -> canonical transfers, every transaction, problems as data.

Message-level problems (not XML, wrong namespace or version, group header, NbOfTxs, CtrlSum)
refuse the message; anything wrong inside a transaction refuses that transaction only. An
EndToEndId used twice in one message refuses every transaction that carries it (AM05).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters import checks
from adapters import identifiers as ids
from adapters.base import DecodedMessage, DecodedTx
from adapters.checks import Problems, iso_datetime, text_field
from adapters.identifiers import ORGANISATION_ID_TYPES
from adapters.pacs.mapping import (
    GRPHDR_SCHEMA,
    ID_LENGTH_MAX,
    INSTRUCTION_PRIORITY,
    NAME_LENGTH_MAX,
    NS_PACS008,
    TX_SCHEMA,
    USTRD_LENGTH_MAX,
    USTRD_MAX,
)
from adapters.pacs.profile import PacsProfile
from adapters.walk import Reader
from adapters.xmlsafe import XmlRejected, local, parse
from clearing.model import Account, Agent, Party, Transfer
from clearing.reasons import Reason, Rejection

_Q = "{" + NS_PACS008 + "}"
_DOCUMENT, _BODY, _GRPHDR, _TX = (
    _Q + n for n in ("Document", "FIToFICstmrCdtTrf", "GrpHdr", "CdtTrfTxInf")
)
_GRPHDR_READER = Reader(GRPHDR_SCHEMA, NS_PACS008)
_TX_READER = Reader(TX_SCHEMA, NS_PACS008)
_CODE_MAX = {"Cd": 4, "Prtry": 35}
CHARGE_BEARERS = frozenset({"DEBT", "CRED", "SHAR", "SLEV"})
_Key = tuple[str | bool | None, ...]


def decode(profile: PacsProfile, data: bytes) -> DecodedMessage:
    try:
        root = parse(data, profile.limits)
    except XmlRejected as exc:
        return _refused(profile, exc.rejection)
    if root.tag != _DOCUMENT:
        found = root.tag.partition("}")[0].lstrip("{") if isinstance(root.tag, str) else "?"
        return _refused(
            profile,
            Rejection(
                Reason.FF01,
                f"expected a pacs.008.001.08 Document, found {found[:80]!r}",
                "Document",
            ),
        )
    body = [c for c in root]
    if len(body) != 1 or body[0].tag != _BODY:
        return _refused(
            profile, Rejection(Reason.FF01, "Document must hold one FIToFICstmrCdtTrf", "Document")
        )
    header, tx_els, msg_probs = None, [], Problems("")
    for c in body[0]:
        if c.tag == _TX:
            tx_els.append(c)
        elif c.tag == _GRPHDR and header is None:
            header = c
        else:
            msg_probs.add(Reason.FF01, local(c.tag), "element is not supported here (or repeated)")
    if header is None:
        msg_probs.add(Reason.FF01, "GrpHdr", "GrpHdr is required")
    if not tx_els:
        msg_probs.add(Reason.FF01, "CdtTrfTxInf", "at least one CdtTrfTxInf is required")
    if len(tx_els) > profile.txs_max:
        msg_probs.add(Reason.FF01, "CdtTrfTxInf", f"more than {profile.txs_max} transactions")
    if msg_probs:
        return _refused(profile, *msg_probs.items)
    return _decode_body(profile, header, tx_els)


def _decode_body(profile: PacsProfile, header: Any, tx_els: list[Any]) -> DecodedMessage:
    hp = Problems("GrpHdr")
    h = _GRPHDR_READER.flatten(header, hp)
    msg_id = text_field(h.get("MsgId"), "MsgId", hp, length_max=ID_LENGTH_MAX)
    created_at = iso_datetime(h.get("CreDtTm"), "CreDtTm", hp)
    mtd = h.get("SttlmInf/SttlmMtd")
    if mtd is None or mtd.strip() != "CLRG":
        hp.add(Reason.FF01, "SttlmInf/SttlmMtd", "settlement method must be CLRG")
    instructing = (h.get("InstgAgt/FinInstnId/ClrSysMmbId/MmbId") or "").strip() or None

    reader = _TxReader(profile, msg_id or "", created_at, remember=len(tx_els) > 1)
    decoded = [reader.read(i, el) for i, el in enumerate(tx_els)]
    txs = checks.refuse_duplicates([d for d, _, _ in decoded], "CdtTrfTxInf[{n}]/PmtId/EndToEndId")
    if instructing is None:
        instructing = decoded[0][2]

    checks.count(h.get("NbOfTxs"), len(tx_els), "NbOfTxs", hp)
    if h.get("CtrlSum") is not None:
        checks.ctrl_sum(h["CtrlSum"], [a for _, a, _ in decoded], "CtrlSum", hp)
    return DecodedMessage(
        scheme=profile.scheme,
        msg_id=msg_id,
        instructing_member_id=instructing,
        created_at=created_at,
        error=hp.items[0] if hp else None,
        txs=tuple(txs),
        more_errors=tuple(hp.items[1:]),
    )


def _refused(profile: PacsProfile, first: Rejection, *more: Rejection) -> DecodedMessage:
    return DecodedMessage(profile.scheme, None, None, None, first, (), more_errors=more)


class _TxReader:
    """Reads one CdtTrfTxInf; its helpers take the flat map `f` and the transaction's Problems."""

    def __init__(
        self, profile: PacsProfile, msg_id: str, created_at: datetime | None, *, remember: bool
    ) -> None:
        self.profile = profile
        self.remember = remember
        self.msg_id = msg_id
        self.created_at = created_at
        # A bulk message repeats its payer and providers: values already found valid in this
        # message are taken as they are (only valid ones: problems need each transaction's path).
        self.seen: dict[_Key, Any] = {}

    def _sides(self, f: dict[str, Any], p: Problems) -> tuple[Any, Any, Any, Any]:
        """Debtor, creditor and their agents (creditor agent None when not given)."""
        if not self.remember:
            creditor_agent = _agent(f, _CDTR, p, creditor=True) if "CdtrAgt" in f else None
            return (
                _party(f, _DBTR, p),
                _party(f, _CDTR, p),
                _agent(f, _DBTR, p, creditor=False),
                creditor_agent,
            )
        remembered = self._remembered
        creditor_agent = None
        if "CdtrAgt" in f:
            creditor_agent = remembered(
                lambda: _CDTR.agent_key(f), p, lambda: _agent(f, _CDTR, p, creditor=True)
            )
        return (
            remembered(lambda: _DBTR.party_key(f), p, lambda: _party(f, _DBTR, p)),
            remembered(lambda: _CDTR.party_key(f), p, lambda: _party(f, _CDTR, p)),
            remembered(lambda: _DBTR.agent_key(f), p, lambda: _agent(f, _DBTR, p, creditor=False)),
            creditor_agent,
        )

    def _remembered(self, key_of: Callable[[], _Key], p: Problems, read: Callable[[], Any]) -> Any:
        """`read()`, or its earlier result in this message for the same inputs (`key_of()`)."""
        key = key_of()
        value = self.seen.get(key)
        if value is None:
            before = len(p.items)
            value = read()
            if value is not None and len(p.items) == before and len(self.seen) < SEEN_MAX:
                self.seen[key] = value
        return value

    def read(self, i: int, el: Any) -> tuple[DecodedTx, str | None, str | None]:
        """The decoded transaction, its amount text (for CtrlSum), its debtor agent member id."""
        p = Problems(f"CdtTrfTxInf[{i + 1}]")
        f = _TX_READER.flatten(el, p)
        if "PmtId" not in f:
            p.add(Reason.FF01, "PmtId", "PmtId is required")
        e2e = text_field(f.get("PmtId/EndToEndId"), "PmtId/EndToEndId", p, length_max=ID_LENGTH_MAX)
        tx_id = text_field(
            f.get("PmtId/TxId"), "PmtId/TxId", p, length_max=ID_LENGTH_MAX, required=False
        )
        instr_id = text_field(
            f.get("PmtId/InstrId"), "PmtId/InstrId", p, length_max=ID_LENGTH_MAX, required=False
        )
        uetr = checks.uetr(f.get("PmtId/UETR"), "PmtId/UETR", p)
        amount = checks.amount(
            f.get("IntrBkSttlmAmt"),
            f.get("IntrBkSttlmAmt/@Ccy"),
            "IntrBkSttlmAmt",
            p,
            self.profile.currencies,
        )
        instructed = None
        if "InstdAmt" in f:
            instructed = checks.amount(f["InstdAmt"], f.get("InstdAmt/@Ccy"), "InstdAmt", p, None)
        rate = checks.exchange_rate(f.get("XchgRate"), "XchgRate", p)
        charge_bearer = (f.get("ChrgBr") or "").strip()
        if charge_bearer not in CHARGE_BEARERS:
            p.add(Reason.FF01, "ChrgBr", "ChrgBr is required: DEBT, CRED, SHAR or SLEV")
        category = _code(f, "PmtTpInf/CtgyPurp", p)
        priority = _priority(f.get("PmtTpInf/InstrPrty"), p)
        purpose = _code(f, "Purp", p)
        remittance = _remittance(f, p)
        debtor, creditor, debtor_agent, creditor_agent = self._sides(f, p)
        debtor_account = _account(f, _DBTR, p, debtor_agent)
        creditor_account = _account(f, _CDTR, p, creditor_agent)
        if "CdtrAgt" not in f and (creditor_account is None or creditor_account.proxy is None):
            p.add(
                Reason.RC10, "CdtrAgt", "CdtrAgt is required unless CdtrAcct/Prxy names the payee"
            )
        debtor_member = (f.get("DbtrAgt/FinInstnId/ClrSysMmbId/MmbId") or "").strip() or None
        amount_text = f.get("IntrBkSttlmAmt")
        ref = (f.get("PmtId/ClrSysRef") or "").strip() or None
        if p or e2e is None:
            return DecodedTx(i, e2e, tx_id, None, tuple(p.items), ref), amount_text, debtor_member
        transfer = Transfer(
            msg_id=self.msg_id,
            end_to_end_id=e2e,
            source_scheme=self.profile.scheme,
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
            instr_id=instr_id,
            uetr=uetr,
            instructed_amount=instructed,
            exchange_rate=rate,
            purpose=purpose,
            category_purpose=category,
            remittance_info=remittance,
            charge_bearer=charge_bearer,
            created_at=self.created_at,
            priority=priority,
        )
        return DecodedTx(i, e2e, tx_id, transfer, (), ref), amount_text, debtor_member


def _code(f: dict[str, Any], where: str, p: Problems) -> str | None:
    if where not in f:
        return None
    cd, prtry = f.get(f"{where}/Cd"), f.get(f"{where}/Prtry")
    if (cd is None) == (prtry is None):
        p.add(Reason.FF01, where, "exactly one of Cd or Prtry is required")
        return None
    if cd is not None:
        return text_field(cd, f"{where}/Cd", p, length_max=_CODE_MAX["Cd"])
    return text_field(prtry, f"{where}/Prtry", p, length_max=_CODE_MAX["Prtry"])


def _priority(code: str | None, p: Problems) -> str:
    """PmtTpInf/InstrPrty: HIGH is urgent; NORM, or no InstrPrty, is normal."""
    if code is None:
        return "normal"
    priority = INSTRUCTION_PRIORITY.get(code.strip())
    if priority is None:
        p.add(Reason.FF01, "PmtTpInf/InstrPrty", "InstrPrty must be HIGH or NORM")
        return "normal"
    return priority


def _remittance(f: dict[str, Any], p: Problems) -> str | None:
    """Ustrd pieces joined as written (edge spaces inside the text are content), then stripped."""
    if "RmtInf" not in f:
        return None
    pieces = f.get("RmtInf/Ustrd") or []
    if any(v is None or len(v) > USTRD_LENGTH_MAX for v in pieces):
        p.add(Reason.FF01, "RmtInf/Ustrd", f"each Ustrd holds 1 to {USTRD_LENGTH_MAX} characters")
        return None
    return text_field("".join(pieces), "RmtInf/Ustrd", p, length_max=USTRD_MAX * USTRD_LENGTH_MAX)


class _PartyPaths:
    """Flat-map keys of one side (Dbtr or Cdtr), built once: the reader runs per transaction."""

    def __init__(self, party: str) -> None:
        self.party, self.name, self.id = party, f"{party}/Nm", f"{party}/Id"
        self.org, self.prv = f"{party}/Id/OrgId", f"{party}/Id/PrvtId"
        self.org_scheme, self.org_value = f"{self.org}/Othr/SchmeNm/Prtry", f"{self.org}/Othr/Id"
        self.prv_scheme, self.prv_value = f"{self.prv}/Othr/SchmeNm/Prtry", f"{self.prv}/Othr/Id"
        self.agent = f"{party}Agt"
        self.member = f"{party}Agt/FinInstnId/ClrSysMmbId"
        self.system_cd = f"{self.member}/ClrSysId/Cd"
        self.system_prtry = f"{self.member}/ClrSysId/Prtry"
        self.member_id = f"{self.member}/MmbId"
        self.agent_name = f"{party}Agt/FinInstnId/Nm"
        self.account = f"{party}Acct"
        self.number = f"{party}Acct/Id/Othr/Id"
        self.proxy = f"{party}Acct/Prxy"
        self.proxy_type = f"{party}Acct/Prxy/Tp/Cd"
        self.proxy_id = f"{party}Acct/Prxy/Id"

    def party_key(self, f: dict[str, Any]) -> _Key:
        """Everything `_party` reads, as a key for values already checked in this message."""
        return (
            self.party,
            self.party in f,
            f.get(self.name),
            self.id in f,
            self.org in f,
            f.get(self.org_scheme),
            f.get(self.org_value),
            self.prv in f,
            f.get(self.prv_scheme),
            f.get(self.prv_value),
        )

    def agent_key(self, f: dict[str, Any]) -> _Key:
        return (
            self.agent,
            self.agent in f,
            f.get(self.system_cd),
            f.get(self.system_prtry),
            f.get(self.member_id),
            f.get(self.agent_name),
        )


_DBTR, _CDTR = _PartyPaths("Dbtr"), _PartyPaths("Cdtr")
SEEN_MAX = 1024  # distinct parties and agents remembered per message


def _party(f: dict[str, Any], k: _PartyPaths, p: Problems) -> Party | None:
    if k.party not in f:
        p.add(Reason.FF01, k.party, f"{k.party} is required")
        return None
    name = text_field(f.get(k.name), k.name, p, length_max=NAME_LENGTH_MAX)
    pid = None
    if k.id in f:
        org = k.org in f
        if org == (k.prv in f):
            p.add(Reason.FF01, k.id, "Id holds exactly one of OrgId or PrvtId")
        else:
            base = k.org if org else k.prv
            pid = checks.party_id(
                f.get(k.org_scheme if org else k.prv_scheme),
                f.get(k.org_value if org else k.prv_value),
                f"{base}/Othr",
                p,
            )
            if pid is not None and (pid.type in ORGANISATION_ID_TYPES) != org:
                where_ok = "OrgId" if pid.type in ORGANISATION_ID_TYPES else "PrvtId"
                p.add(
                    Reason.FF01,
                    f"{base}/Othr",
                    f"a {pid.type.value} identification belongs in {where_ok}",
                )
                pid = None
    return Party(name, pid) if name is not None else None


def _agent(f: dict[str, Any], k: _PartyPaths, p: Problems, *, creditor: bool) -> Agent | None:
    if k.agent not in f:
        p.add(Reason.FF01, k.agent, f"{k.agent} is required")
        return None
    cd, prtry = f.get(k.system_cd), f.get(k.system_prtry)
    if cd is not None and prtry is not None:
        p.add(Reason.FF01, f"{k.member}/ClrSysId", "exactly one of Cd or Prtry is required")
        return None
    name = f.get(k.agent_name)
    if name is not None:
        name = text_field(name, k.agent_name, p, length_max=NAME_LENGTH_MAX)
    return checks.agent(
        cd if cd is not None else prtry, f.get(k.member_id), name, k.member, p, creditor=creditor
    )


def _account(
    f: dict[str, Any], k: _PartyPaths, p: Problems, holder: Agent | None
) -> Account | None:
    if k.account not in f:
        p.add(Reason.AC01, k.account, f"{k.account} is required")
        return None
    ptype, pval = f.get(k.proxy_type), f.get(k.proxy_id)
    if ptype is None and pval is None and k.proxy in f:
        ptype = ""
    return checks.account(f.get(k.number), ptype, pval, holder, k.account, p)
