"""From a provider's decoded message to candidates for acceptance, and back to its answer.

decode (adapter) -> authorize (the debtor agent is the signer) -> route (directory) ->
convert (FX quote) -> accept (one batched transaction) -> encode the sender's status report.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import DecodedMessage, StatusReport
from clearing.fx import convert
from clearing.model import Transfer, TxStatus
from clearing.money import MoneyError
from clearing.ports import Leg, ReserveRequest
from clearing.reasons import Reason, Rejection
from gateway import transfer_json
from gateway.acceptance import Candidate, Outcome
from gateway.routing import Directory, Participant, Route, route


class Forbidden(Exception):
    """The signer tried to act for another participant (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One transaction of a message: either a candidate for acceptance or an early answer."""

    candidate: Candidate | None
    early: Outcome | None


def authorize(sender: Participant, decoded: DecodedMessage) -> None:
    """A provider may only debit itself: every debtor agent must be the signer."""
    for tx in decoded.txs:
        t = tx.transfer
        if t is None:
            continue
        agent = t.debtor_agent
        if (agent.clearing_system, agent.member_id) != (
            sender.clearing_system,
            sender.clearing_code,
        ):
            raise Forbidden(
                f"transaction {tx.index}: debtor agent {agent.clearing_system} {agent.member_id}"
                f" is not the signing participant {sender.id}"
            )


def debtor_identity(t: Transfer) -> str | None:
    """What corridor limits count against: the debtor's ID number, else the account."""
    if t.debtor.id is not None:
        return f"{t.debtor.id.type}:{t.debtor.id.value}"
    return t.debtor_account.number


def prepare(
    t: Transfer,
    sender: Participant,
    directory: Directory,
    proxies: Mapping[tuple[str, str], tuple[str, str]],
    quotes: Mapping[tuple[str, str], Any],
    expires_at: Any,
    routed: Route | Rejection | None = None,
) -> Candidate:
    """Route and convert one transfer; the candidate carries its rejection if it has one.

    `routed` is `route(t, sender, directory, proxies)` when the caller has it already. The
    transfer is copied once with everything the gateway adds (a frozen dataclass with some
    thirty fields: each copy costs as much as routing it)."""
    tid = uuid.uuid4().hex  # 32 characters: fits the 35 that ISO 20022 ids carry
    hashed, digest = transfer_json.payload(t)  # the hash leaves the gateway's id out
    r = routed if routed is not None else route(t, sender, directory, proxies)
    if isinstance(r, Rejection):
        return Candidate(t.evolve(id=tid), sender.id, None, digest, r, None, payload_json=hashed)
    t, legs_or_rej = _convert(t, tid, sender, r, quotes)
    if isinstance(legs_or_rej, Rejection):
        return Candidate(
            t, sender.id, r.receiver.id, digest, legs_or_rej, None, payload_json=hashed
        )
    req = ReserveRequest(
        transfer_id=tid,
        legs=legs_or_rej,
        source_scheme=t.source_scheme,
        destination_scheme=r.destination_scheme,
        expires_at=expires_at,
        debtor_identity=debtor_identity(t),
        quote_id=t.quote_id,
    )
    return Candidate(
        t, sender.id, r.receiver.id, digest, None, req, priority=t.priority, payload_json=hashed
    )


def _convert(
    t: Transfer, tid: str, sender: Participant, r: Route, quotes: Mapping[tuple[str, str], Any]
) -> tuple[Transfer, tuple[Leg, ...] | Rejection]:
    routed = {
        "id": tid,
        "destination_scheme": r.destination_scheme,
        "creditor_account": r.creditor_account,
        "creditor_agent": r.receiver.agent,
    }
    if r.fx_provider is None:
        return t.evolve(**routed), (Leg(sender.id, r.receiver.id, t.amount),)
    pair = (t.amount.currency, r.destination_currency)
    quote = quotes.get(pair)
    if t.quote_id is not None:
        quote = quotes.get(("id", t.quote_id))
    if quote is None:
        return t.evolve(**routed), Rejection(
            Reason.AM03, f"no quote for {pair[0]}->{pair[1]}", "XchgRate"
        )
    try:
        target = convert(t.amount, quote.rate, quote.target_currency)
    except MoneyError as exc:
        return t.evolve(**routed), Rejection(Reason(exc.code), exc.message, "IntrBkSttlmAmt")
    if target.minor <= 0:
        return t.evolve(**routed), Rejection(
            Reason.AM12, "amount is too small to convert", "IntrBkSttlmAmt"
        )
    t = t.evolve(**routed, creditor_amount=target, quote_id=quote.id, exchange_rate=str(quote.rate))
    fx = quote.fx_provider
    return t, (Leg(sender.id, fx, t.amount), Leg(fx, r.receiver.id, target))


def reports_for(decoded: DecodedMessage, outcomes: Sequence[Outcome | None]) -> list[StatusReport]:
    """One status report per transaction of the message, in message order."""
    out = []
    for tx, o in zip(decoded.txs, outcomes, strict=True):
        if o is None:
            err = tx.errors[0]
            out.append(
                StatusReport(
                    decoded.msg_id,
                    tx.end_to_end_id,
                    tx.tx_id,
                    TxStatus.RJCT,
                    err.code,
                    f"{err.path}: {err.message}" if err.path else err.message,
                )
            )
        else:
            out.append(
                StatusReport(
                    decoded.msg_id,
                    o.end_to_end_id,
                    o.tx_id,
                    o.status,
                    o.reason,
                    o.message,
                    o.transfer_id,
                )
            )
    return out
