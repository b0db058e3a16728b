"""HTTP API under /v1: thin handlers (decode, decide, persist, encode).

Provider requests are signed (RFC 9421, see gateway/auth.py); operator requests carry the
operator bearer token. JSON errors are RFC 9457 problem+json; scheme callers get native
status reports.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from pydantic import BaseModel, ValidationError

from adapters.base import AdapterError
from adapters.registry import SCHEME_IDS
from clearing.model import Account, Agent, Party, PartyId, PartyIdType, Proxy, ProxyType, Transfer
from clearing.money import Money, MoneyError
from clearing.ports import ClearingError
from gateway import api_models as m
from gateway.app import problem
from gateway.auth import AuthError, Verifier
from gateway.lsm_store import LsmStore
from gateway.routing import Participant
from gateway.service import Gateway, Overloaded
from gateway.submission import Forbidden

GATEWAY = web.AppKey("gateway", Gateway)
VERIFIER = web.AppKey("verifier", Verifier)
OPERATOR_TOKEN = web.AppKey("operator_token", str)
PARTICIPANT = web.RequestKey("participant", Participant)
OPERATOR = web.RequestKey("operator", str)
XML_TYPES = frozenset({"application/xml", "text/xml"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_problem(status: int, title: str, detail: str = "") -> web.Response:
    return problem(status, title, detail)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed provider requests for /v1/*, bearer token for /v1/operator/*."""
    path = request.path
    if not path.startswith("/v1/"):
        return await handler(request)
    if "\x00" in path:  # "%00": no resource is named so, and no database text can hold it
        return _json_problem(404, "Not Found", "no resource has U+0000 in its name")
    body = await request.read()  # bounded by client_max_size (413 past it)
    if path.startswith("/v1/operator/"):
        token = request.app[OPERATOR_TOKEN]
        given = request.headers.get("Authorization", "")
        if not (
            given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())
        ):
            return _json_problem(
                401, "Unauthorized", "operator endpoints need the operator bearer token"
            )
        request[OPERATOR] = "operator"
        return await handler(request)
    try:
        pid = await request.app[VERIFIER].verify(
            request.method, request.raw_path, request.headers, body
        )
    except AuthError as exc:
        return web.json_response(
            exc.problem(),
            status=exc.status,
            headers=exc.headers(),
            content_type="application/problem+json",
        )
    gw = request.app[GATEWAY]
    await gw.refresh_directory()
    participant = gw.directory.by_id.get(pid)
    if participant is None:
        return _json_problem(401, "Unauthorized", f"unknown participant {pid}")
    if participant.status != "active":
        return _json_problem(403, "Forbidden", f"participant {pid} is suspended")
    request[PARTICIPANT] = participant
    return await handler(request)


def _me(request: web.Request) -> Participant:
    return request[PARTICIPANT]


async def _model(request: web.Request, model: type[BaseModel]) -> Any:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="expected application/json")
    try:
        body = model.model_validate_json(await request.read())
    except ValidationError as exc:
        errs = [
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
            for e in exc.errors()[:20]
        ]
        raise web.HTTPUnprocessableEntity(text="; ".join(errs)) from None
    # JSON may carry U+0000 ("\u0000"), which no PostgreSQL text can hold: refused here, as it
    # would otherwise fail the whole acceptance batch the request joins.
    where = _nul_path(body.model_dump())
    if where is not None:
        raise web.HTTPUnprocessableEntity(text=f"{where or '(body)'}: text must not contain U+0000")
    return body


def _nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _nul_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


# --- providers ---------------------------------------------------------------------------


async def post_message(request: web.Request) -> web.StreamResponse:
    scheme = request.match_info["scheme"]
    if scheme not in SCHEME_IDS:
        return _json_problem(404, "Not Found", f"unknown scheme {scheme!r}")
    sender = _me(request)
    if sender.scheme != scheme:
        return _json_problem(
            403, "Forbidden", f"{sender.id} submits in {sender.scheme}, not {scheme}"
        )
    if request.content_type not in XML_TYPES:
        return _json_problem(415, "Unsupported Media Type", "scheme messages are application/xml")
    gw = request.app[GATEWAY]
    try:
        status, body = await gw.submit_native(sender, scheme, await request.read())
    except Forbidden as exc:
        return _json_problem(403, "Forbidden", str(exc))
    except Overloaded as exc:
        return _json_problem(503, "Service Unavailable", str(exc))
    return web.Response(body=body, status=status, content_type="application/xml", charset="utf-8")


def _transfer_from_json(t: m.TransferIn, sender: Participant) -> Transfer:
    def party(p: m.PartyIn) -> Party:
        pid = PartyId(PartyIdType(p.id_type), p.id_value) if p.id_type and p.id_value else None
        return Party(p.name, pid)

    def account(a: m.AccountIn) -> Account:
        px = Proxy(ProxyType(a.proxy.type), a.proxy.value) if a.proxy else None
        return Account(a.number, px)

    agent = (
        Agent(t.creditor_agent.clearing_system, t.creditor_agent.member_id)
        if t.creditor_agent
        else None
    )
    return Transfer(
        msg_id=t.msg_id,
        end_to_end_id=t.end_to_end_id,
        source_scheme=sender.scheme,
        amount=Money.parse(t.amount, t.currency, allow_zero=False),
        debtor=party(t.debtor),
        debtor_account=account(t.debtor_account),
        debtor_agent=sender.agent,
        creditor=party(t.creditor),
        creditor_account=account(t.creditor_account),
        creditor_agent=agent,
        quote_id=t.quote_id,
        purpose=t.purpose,
        remittance_info=t.remittance_info,
        uetr=t.uetr,
        priority=t.priority,
    )


async def post_transfer(request: web.Request) -> web.StreamResponse:
    body: m.TransferIn = await _model(request, m.TransferIn)
    sender = _me(request)
    if not (body.debtor_account.number or body.debtor_account.proxy):
        raise web.HTTPUnprocessableEntity(text="debtor_account: number or proxy required")
    try:
        transfer = _transfer_from_json(body, sender)
    except MoneyError as exc:
        out = m.TransferOut(
            id=None,
            end_to_end_id=body.end_to_end_id,
            status="RJCT",
            reason=exc.code,
            message=exc.message,
        )
        return web.json_response(out.model_dump(), status=200)
    gw = request.app[GATEWAY]
    try:
        [o] = await gw.submit_transfers(sender, [transfer])
    except Overloaded as exc:
        return _json_problem(503, "Service Unavailable", str(exc))
    status = cast(m.TxStatusCode, o.status.value)  # TxStatus has exactly these values
    out = m.TransferOut(
        id=o.transfer_id,
        end_to_end_id=o.end_to_end_id,
        status=status,
        reason=o.reason,
        message=o.message,
        replay=o.replay,
    )
    if o.reason == "DUPL":
        return web.json_response(out.model_dump(), status=409)
    return web.json_response(out.model_dump(), status=201 if not o.replay else 200)


async def get_transfer(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    me = _me(request)
    tid = request.match_info["id"]
    if len(tid) > 64:
        return _json_problem(404, "Not Found", "no such transfer")
    async with gw.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM transfers WHERE id = $1", tid)
        if row is None or me.id not in (row["sender_id"], row["receiver_id"]):
            return _json_problem(404, "Not Found", "no such transfer")
        events = await conn.fetch(
            "SELECT at, state, tx_status, reason, detail FROM transfer_events WHERE transfer_id = $1 ORDER BY id",
            tid,
        )
    cred = (
        Money(row["creditor_amount_minor"], row["creditor_currency"]).format()
        if row["creditor_amount_minor"]
        else None
    )
    out = m.TransferDetail(
        id=row["id"],
        sender=row["sender_id"],
        receiver=row["receiver_id"],
        source_scheme=row["source_scheme"],
        destination_scheme=row["destination_scheme"],
        end_to_end_id=row["end_to_end_id"],
        state=row["state"],
        status=row["tx_status"],
        reason=row["reason"],
        message=row["reason_message"],
        amount=Money(row["amount_minor"], row["currency"]).format(),
        currency=row["currency"],
        creditor_amount=cred,
        creditor_currency=row["creditor_currency"],
        created_at=row["created_at"].isoformat(),
        history=[
            m.TransferEvent(
                at=e["at"].isoformat(),
                state=e["state"],
                status=e["tx_status"],
                reason=e["reason"],
                detail=e["detail"],
            )
            for e in events
        ],
    )
    return web.json_response(out.model_dump())


async def post_quote(request: web.Request) -> web.StreamResponse:
    body: m.QuoteIn = await _model(request, m.QuoteIn)
    gw = request.app[GATEWAY]
    fx = gw.directory.fx_provider()
    if fx is None:
        return _json_problem(422, "Unprocessable Content", "no FX provider is registered")
    try:
        q = await gw.clearing.create_quote(
            body.source_currency, body.target_currency, fx_provider=fx.id
        )
    except (ValueError, ClearingError) as exc:
        return _json_problem(422, "Unprocessable Content", str(exc))
    out = m.QuoteOut(
        id=q.id,
        source_currency=q.source_currency,
        target_currency=q.target_currency,
        rate=str(q.rate),
        expires_at=q.expires_at.isoformat(),
    )
    return web.json_response(out.model_dump(), status=201)


async def get_me(request: web.Request) -> web.StreamResponse:
    p = _me(request)
    out = m.ParticipantOut(
        id=p.id,
        name=p.name,
        scheme=p.scheme,
        clearing_system=p.clearing_system,
        clearing_code=p.clearing_code,
        role=p.role,
        status=p.status,
    )
    return web.json_response(out.model_dump())


def _position_out(v: Any) -> dict[str, Any]:
    def f(x: int) -> str:
        return Money(x, v.currency).format()

    return m.PositionOut(
        participant_id=v.participant_id,
        currency=v.currency,
        net=f(v.net),
        reserved=f(v.reserved),
        net_debit_cap=f(v.net_debit_cap),
        liquidity_cover=f(v.liquidity_cover),
        headroom=f(v.headroom),
    ).model_dump()


async def get_positions(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    views = await gw.clearing.positions(_me(request).id)
    return web.json_response({"positions": [_position_out(v) for v in views]})


async def get_lsm_queue(request: web.Request) -> web.StreamResponse:
    """Operator view of the liquidity-saving queue: what waits, per payer and currency."""
    gw = request.app[GATEWAY]
    views = await LsmStore(gw.pool, gw.clock, gw.transfer_timeout_s).queue_view()
    totals: dict[str, list[int]] = {}
    for v in views:
        t = totals.setdefault(v.currency, [0, 0])
        t[0] += v.depth
        t[1] += v.value_minor
    return web.json_response(
        {
            "queue": [
                {
                    "participant_id": v.participant_id,
                    "currency": v.currency,
                    "depth": v.depth,
                    "value": Money(v.value_minor, v.currency).format(),
                    "value_minor": v.value_minor,
                    "oldest_queued_at": v.oldest_queued_at.isoformat(),
                }
                for v in views
            ],
            "totals": [
                {"currency": c, "depth": d, "value": Money(val, c).format(), "value_minor": val}
                for c, (d, val) in sorted(totals.items())
            ],
        }
    )


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/operator/lsm/queue", get_lsm_queue)
    r.add_post("/v1/schemes/{scheme}/messages", post_message)
    r.add_post("/v1/transfers", post_transfer)
    r.add_get("/v1/transfers/{id}", get_transfer)
    r.add_post("/v1/quotes", post_quote)
    r.add_get("/v1/participants/me", get_me)
    r.add_get("/v1/positions", get_positions)
    from gateway import api_files, api_operator

    api_operator.register(app)
    api_files.register(app)


__all__ = ["GATEWAY", "OPERATOR_TOKEN", "VERIFIER", "AdapterError", "authenticate", "register"]
