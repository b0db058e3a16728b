"""Canonical transfer <-> JSON-able dict, for storage (JSONB) and the idempotency hash.

Amounts are stored as {"minor": int, "currency": str}: never floats.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from clearing.model import Account, Agent, Party, PartyId, PartyIdType, Proxy, ProxyType, Transfer
from clearing.money import Money
from gateway import jsoncodec

# Fields that identify the envelope rather than the payment: a re-sent transaction with a
# new message id or creation time is the same payment.
_HASH_EXCLUDED = ("id", "msg_id", "created_at", "destination_scheme")


def _money(m: Money | None) -> dict[str, Any] | None:
    return None if m is None else {"minor": m.minor, "currency": m.currency}


def _party(p: Party) -> dict[str, Any]:
    return {
        "name": p.name,
        "id": None if p.id is None else {"type": str(p.id.type), "value": p.id.value},
    }


def _account(a: Account) -> dict[str, Any]:
    proxy = None if a.proxy is None else {"type": str(a.proxy.type), "value": a.proxy.value}
    return {"number": a.number, "proxy": proxy}


def _agent(a: Agent | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"clearing_system": a.clearing_system, "member_id": a.member_id, "name": a.name}


def to_dict(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "msg_id": t.msg_id,
        "end_to_end_id": t.end_to_end_id,
        "tx_id": t.tx_id,
        "instr_id": t.instr_id,
        "uetr": t.uetr,
        "source_scheme": t.source_scheme,
        "destination_scheme": t.destination_scheme,
        "amount": _money(t.amount),
        "creditor_amount": _money(t.creditor_amount),
        "instructed_amount": _money(t.instructed_amount),
        "exchange_rate": t.exchange_rate,
        "quote_id": t.quote_id,
        "debtor": _party(t.debtor),
        "debtor_account": _account(t.debtor_account),
        "debtor_agent": _agent(t.debtor_agent),
        "creditor": _party(t.creditor),
        "creditor_account": _account(t.creditor_account),
        "creditor_agent": _agent(t.creditor_agent),
        "purpose": t.purpose,
        "category_purpose": t.category_purpose,
        "remittance_info": t.remittance_info,
        "charge_bearer": t.charge_bearer,
        "created_at": None if t.created_at is None else t.created_at.isoformat(),
        "extras": [list(kv) for kv in t.extras],
        "priority": t.priority,
    }


def _m(d: dict[str, Any] | None) -> Money | None:
    return None if d is None else Money(int(d["minor"]), d["currency"])


def _p(d: dict[str, Any]) -> Party:
    pid = d.get("id")
    return Party(
        d["name"], None if pid is None else PartyId(PartyIdType(pid["type"]), pid["value"])
    )


def _a(d: dict[str, Any]) -> Account:
    px = d.get("proxy")
    return Account(
        d.get("number"), None if px is None else Proxy(ProxyType(px["type"]), px["value"])
    )


def _g(d: dict[str, Any] | None) -> Agent | None:
    return None if d is None else Agent(d["clearing_system"], d["member_id"], d.get("name"))


def from_dict(d: dict[str, Any]) -> Transfer:
    amount = _m(d["amount"])
    assert amount is not None
    debtor_agent = _g(d["debtor_agent"])
    assert debtor_agent is not None
    return Transfer(
        msg_id=d["msg_id"],
        end_to_end_id=d["end_to_end_id"],
        source_scheme=d["source_scheme"],
        amount=amount,
        debtor=_p(d["debtor"]),
        debtor_account=_a(d["debtor_account"]),
        debtor_agent=debtor_agent,
        creditor=_p(d["creditor"]),
        creditor_account=_a(d["creditor_account"]),
        creditor_agent=_g(d.get("creditor_agent")),
        destination_scheme=d.get("destination_scheme"),
        id=d.get("id"),
        tx_id=d.get("tx_id"),
        instr_id=d.get("instr_id"),
        uetr=d.get("uetr"),
        creditor_amount=_m(d.get("creditor_amount")),
        instructed_amount=_m(d.get("instructed_amount")),
        exchange_rate=d.get("exchange_rate"),
        quote_id=d.get("quote_id"),
        purpose=d.get("purpose"),
        category_purpose=d.get("category_purpose"),
        remittance_info=d.get("remittance_info"),
        charge_bearer=d.get("charge_bearer"),
        created_at=None if d.get("created_at") is None else datetime.fromisoformat(d["created_at"]),
        extras=tuple((str(k), str(v)) for k, v in d.get("extras") or ()),
        priority=d.get("priority", "normal"),
    )


def dumps(t: Transfer) -> str:
    return jsoncodec.compact(to_dict(t))


def loads(data: str | bytes) -> Transfer:
    return from_dict(jsoncodec.loads(data))


def payload_sha256(t: Transfer) -> str:
    """Hash of what the sender asked for: same id and same hash is a replay, else a duplicate."""
    return payload(t)[1]


def payload(t: Transfer) -> tuple[str, str]:
    """(the encoding hashed, `payload_sha256`): the encoding is reused by `stored_json`."""
    d = to_dict(t)
    for k in _HASH_EXCLUDED:
        d.pop(k, None)
    raw = jsoncodec.canonical(d)
    return raw, hashlib.sha256(raw.encode()).hexdigest()


# What routing sets or changes on a transfer (gateway/submission.py): with the envelope keys
# left out of the hash, what the stored encoding must carry beyond the hashed one.
ROUTED_KEYS = ("creditor_account", "creditor_agent", "creditor_amount", "quote_id", "exchange_rate")


def stored_json(hashed: str, routed: Transfer) -> str:
    """The stored (JSONB) encoding of `routed`, given `payload(sent)[0]` of the transfer as
    sent, when `routed` differs from it only in `ROUTED_KEYS` and the envelope keys.

    The hashed encoding is reused as it is and the routed keys are appended after it:
    PostgreSQL's jsonb keeps the last value of a repeated key (as `json.loads` does), so the
    stored value equals `to_dict(routed)` without encoding the whole transfer a second time."""
    extra = {
        "id": routed.id,
        "msg_id": routed.msg_id,
        "created_at": None if routed.created_at is None else routed.created_at.isoformat(),
        "destination_scheme": routed.destination_scheme,
        "creditor_account": _account(routed.creditor_account),
        "creditor_agent": _agent(routed.creditor_agent),
        "creditor_amount": _money(routed.creditor_amount),
        "quote_id": routed.quote_id,
        "exchange_rate": routed.exchange_rate,
    }
    tail = jsoncodec.compact(extra)
    return f"{hashed[:-1]},{tail[1:]}"
