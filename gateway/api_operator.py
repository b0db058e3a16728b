"""Operator endpoints (/v1/operator/*, bearer token): participants, limits, windows, settlements."""

from __future__ import annotations

import base64
from dataclasses import asdict, is_dataclass
from typing import Any

import asyncpg
from aiohttp import web

from clearing.money import Money, MoneyError
from clearing.ports import ClearingError
from gateway import api_models as m
from gateway.api import GATEWAY, _model
from gateway.app import problem
from gateway.directory import SCHEME_CLEARING_SYSTEMS

ACTOR = "operator"


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def _participant_out(r: Any) -> dict[str, Any]:
    return m.ParticipantOut(id=r["id"], name=r["name"], scheme=r["scheme"], clearing_system=r["clearing_system"],
                            clearing_code=r["clearing_code"], role=r["role"], status=r["status"]).model_dump()


BIGINT_MAX = 2**63 - 1


def _settlement_id(text: str) -> int:
    """A settlement id from the path; ValueError (answered 404) when it cannot be one."""
    sid = int(text)
    if not 0 < sid <= BIGINT_MAX:
        raise ValueError(text)
    return sid


def _valid_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


async def add_participant(request: web.Request) -> web.StreamResponse:
    body: m.ParticipantIn = await _model(request, m.ParticipantIn)
    if not _valid_key(body.public_key_ed25519):
        return problem(422, "Unprocessable Content", "public_key_ed25519: base64 of a 32-byte Ed25519 key")
    gw = request.app[GATEWAY]
    try:
        async with gw.pool.acquire() as conn:
            row = await conn.fetchrow(
                """INSERT INTO participants (id, name, scheme, clearing_system, clearing_code, endpoint_url,
                       public_key_ed25519) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING *""",
                body.id, body.name, body.scheme, SCHEME_CLEARING_SYSTEMS[body.scheme], body.clearing_code,
                body.endpoint_url, body.public_key_ed25519,
            )
    except asyncpg.UniqueViolationError:
        return problem(409, "Conflict", "a participant with this id or clearing code exists")
    except asyncpg.CheckViolationError as exc:
        return problem(422, "Unprocessable Content", str(exc))
    await gw.refresh_directory(force=True)
    return web.json_response(_participant_out(row), status=201)


async def patch_participant(request: web.Request) -> web.StreamResponse:
    body: m.ParticipantPatch = await _model(request, m.ParticipantPatch)
    changes = body.model_dump(exclude_unset=True)
    nulls = [k for k in ("name", "public_key_ed25519", "status") if k in changes and changes[k] is None]
    if nulls:
        return problem(422, "Unprocessable Content", f"{', '.join(nulls)}: may not be null")
    if "public_key_ed25519" in changes and not _valid_key(changes["public_key_ed25519"]):
        return problem(422, "Unprocessable Content", "public_key_ed25519: base64 of a 32-byte Ed25519 key")
    gw = request.app[GATEWAY]
    pid = request.match_info["id"]
    cols = [c for c in ("name", "endpoint_url", "public_key_ed25519", "status") if c in changes]
    async with gw.pool.acquire() as conn:
        if cols:
            sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
            row = await conn.fetchrow(
                f"UPDATE participants SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",  # noqa: S608
                pid, *[changes[c] for c in cols],
            )
        else:
            row = await conn.fetchrow("SELECT * FROM participants WHERE id = $1", pid)
    if row is None:
        return problem(404, "Not Found", f"no participant {pid}")
    await gw.refresh_directory(force=True)
    return web.json_response(_participant_out(row))


async def put_limits(request: web.Request) -> web.StreamResponse:
    body: m.LimitsIn = await _model(request, m.LimitsIn)
    pid, ccy = request.match_info["participant"], request.match_info["currency"]
    gw = request.app[GATEWAY]
    if pid not in gw.directory.by_id:
        await gw.refresh_directory(force=True)
        if pid not in gw.directory.by_id:
            return problem(404, "Not Found", f"no participant {pid}")
    try:
        ndc = Money.parse(body.net_debit_cap, ccy).minor
        cover = Money.parse(body.liquidity_cover, ccy).minor
        view = await gw.clearing.set_limits(pid, ccy, ndc, cover)
        if body.liquidity_saving is not None:
            async with gw.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE participant_limits SET liquidity_saving = $3 WHERE participant_id = $1 AND currency = $2",
                    pid, ccy, body.liquidity_saving,
                )
    except (MoneyError, ClearingError, ValueError) as exc:
        return problem(422, "Unprocessable Content", str(exc))
    return web.json_response(_jsonable(view))


async def close_window(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    result, head = await gw.close_window(ACTOR)
    body = _jsonable(result)
    body["audit_chain_head"] = head
    body["settlement_files"] = f"/v1/operator/settlements/windows/{result.window_id}/files"
    return web.json_response(body)


async def confirm_settlement(request: web.Request) -> web.StreamResponse:
    body: m.ConfirmIn = await _model(request, m.ConfirmIn)
    gw = request.app[GATEWAY]
    try:
        sid = _settlement_id(request.match_info["id"])
        view = await gw.clearing.confirm_settlement(ACTOR, sid, body.participant_id, body.currency, body.reference)
    except ValueError:
        return problem(404, "Not Found", "settlement ids are integers")
    except ClearingError as exc:
        return problem(409, "Conflict", str(exc))
    return web.json_response(_jsonable(view))


async def abort_settlement(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    try:
        sid = _settlement_id(request.match_info["id"])
        view = await gw.clearing.abort_settlement(ACTOR, sid, "aborted by operator")
    except ValueError:
        return problem(404, "Not Found", "settlement ids are integers")
    except ClearingError as exc:
        return problem(409, "Conflict", str(exc))
    return web.json_response(_jsonable(view))


def register(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/operator/participants", add_participant)
    r.add_patch("/v1/operator/participants/{id}", patch_participant)
    r.add_put("/v1/operator/limits/{participant}/{currency}", put_limits)
    r.add_post("/v1/operator/windows/close", close_window)
    r.add_post("/v1/operator/settlements/{id}/confirm", confirm_settlement)
    r.add_post("/v1/operator/settlements/{id}/abort", abort_settlement)
