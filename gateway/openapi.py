"""`/openapi.json` generated from the API's pydantic models, and a readable `/docs` page.

The docs page is rendered on the server from the same spec (no scripts, no CDN), so it
works on an isolated network.
"""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import api_models as m
from gateway.api_files import SettlementFilesOut

SIGNED: list[dict[str, list[str]]] = [{"httpSignature": []}]
OPERATOR: list[dict[str, list[str]]] = [{"operatorToken": []}]
XML = {"application/xml": {"schema": {"type": "string", "format": "binary"}}}

# (method, path, summary, request model or "xml", response model or "xml", security, statuses)
ENDPOINTS: list[tuple[str, str, str, Any, Any, Any, dict[str, str]]] = [
    ("post", "/v1/schemes/{scheme}/messages",
     "Submit a native scheme message (pacs.008 for hk-fps/mo-fps, ibps.101 for cn-ibps); "
     "the answer is the native status report for every transaction.",
     "xml", "xml", SIGNED,
     {"200": "status report (ACSP/RJCT per transaction)", "400": "message-level rejection (native RJCT)",
      "401": "missing, invalid, stale or replayed signature", "403": "acting for another participant",
      "413": "body too large", "415": "not XML", "503": "overloaded or database unavailable"}),
    ("post", "/v1/transfers", "Submit one transfer in canonical JSON.", m.TransferIn, m.TransferOut, SIGNED,
     {"201": "accepted or rejected (see status)", "200": "idempotent replay", "409": "duplicate id, other content",
      "422": "invalid body"}),
    ("get", "/v1/transfers/{id}", "Status and history of a transfer you sent or received.", None,
     m.TransferDetail, SIGNED, {"200": "found", "404": "unknown or not yours"}),
    ("post", "/v1/quotes", "Lock an FX rate for a while.", m.QuoteIn, m.QuoteOut, SIGNED,
     {"201": "quote", "422": "unsupported pair"}),
    ("get", "/v1/participants/me", "Your directory entry.", None, m.ParticipantOut, SIGNED, {"200": "ok"}),
    ("get", "/v1/positions", "Your positions, reservations, caps and cover per currency.", None, None,
     SIGNED, {"200": "ok"}),
    ("get", "/v1/settlements/{window}/files",
     "Your settlement files of a closed window (details/<you>.csv, camt053/<you>.<CCY>.xml) with their "
     "SHA-256 and size from the signed manifest, and the manifest's signature.",
     None, SettlementFilesOut, SIGNED,
     {"200": "your files (empty when you had no transfers in the window)",
      "404": "window not closed, or its files not yet written"}),
    ("get", "/v1/settlements/{window}/files/{path}",
     "Download one of your settlement files (streamed; Repr-Digest carries its SHA-256; ranges honoured).",
     None, None, SIGNED,
     {"200": "the file (text/csv or application/xml)", "404": "no such file of yours in this window"}),
    ("get", "/v1/operator/settlements/windows/{window}/files",
     "Every settlement file of a closed window, manifest.json, summaries and pacs.009 included.",
     None, SettlementFilesOut, OPERATOR,
     {"200": "all files", "404": "window not closed, or its files not yet written"}),
    ("get", "/v1/operator/settlements/windows/{window}/files/{path}",
     "Download any settlement file of a closed window (streamed; Repr-Digest carries its SHA-256).",
     None, None, OPERATOR, {"200": "the file", "404": "no such file in this window"}),
    ("post", "/v1/operator/participants", "Add a participant.", m.ParticipantIn, m.ParticipantOut, OPERATOR,
     {"201": "added", "409": "exists"}),
    ("patch", "/v1/operator/participants/{id}", "Update or suspend a participant.", m.ParticipantPatch,
     m.ParticipantOut, OPERATOR, {"200": "updated", "404": "unknown"}),
    ("put", "/v1/operator/limits/{participant}/{currency}", "Set net debit cap and liquidity cover.",
     m.LimitsIn, None, OPERATOR, {"200": "updated"}),
    ("post", "/v1/operator/windows/close", "Close the open settlement window.", None, None, OPERATOR,
     {"200": "closed; netting and settlement instructions"}),
    ("post", "/v1/operator/settlements/{id}/confirm", "Confirm a participant's settlement payment.",
     m.ConfirmIn, None, OPERATOR, {"200": "confirmed", "409": "wrong state"}),
    ("post", "/v1/operator/settlements/{id}/abort", "Abort a pending settlement.", None, None, OPERATOR,
     {"200": "aborted", "409": "wrong state"}),
    ("get", "/v1/operator/lsm/queue", "Liquidity-saving queue: depth and value per payer and currency.",
     None, None, OPERATOR, {"200": "ok"}),
]  # fmt: skip


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_spec() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    models = {m.Problem}
    for method, path, summary, req, resp, security, statuses in ENDPOINTS:
        op: dict[str, Any] = {"summary": summary, "security": security, "responses": {}}
        params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
                for p in params
            ]
        if req == "xml":
            op["requestBody"] = {"required": True, "content": XML}
        elif req is not None:
            models.add(req)
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(req)}}}
        for code, text in statuses.items():
            r: dict[str, Any] = {"description": text}
            if (code.startswith("2") and resp == "xml") or (code == "400" and resp == "xml"):
                r["content"] = XML
            elif code.startswith("2") and resp is not None:
                models.add(resp)
                r["content"] = {"application/json": {"schema": _ref(resp)}}
            elif not code.startswith("2"):
                r["content"] = {"application/problem+json": {"schema": _ref(m.Problem)}}
            op["responses"][code] = r
        paths.setdefault(path, {})[method] = op
    for model in sorted(models, key=lambda x: x.__name__):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "Baygate API", "version": "1",
                 "description": "Clearing gateway for Greater Bay Area e-payments. Provider requests are "
                                "signed with HTTP Message Signatures (RFC 9421, Ed25519)."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "httpSignature": {"type": "apiKey", "in": "header", "name": "Signature",
                                  "description": "RFC 9421 signature over @method, @path, content-digest, created"},
                "operatorToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


_SPEC = build_spec()


async def openapi_json(_request: web.Request) -> web.Response:
    return web.json_response(_SPEC)


async def docs(_request: web.Request) -> web.Response:
    rows = []
    for method, path, summary, req, _resp, security, statuses in ENDPOINTS:
        auth = "signed" if security is SIGNED else "operator token"
        codes = "<br>".join(f"<b>{c}</b> {html.escape(t)}" for c, t in statuses.items())
        body = "XML" if req == "xml" else (req.__name__ if req else "")
        rows.append(f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td><td>{html.escape(summary)}</td>"
                    f"<td>{auth}</td><td>{body}</td><td>{codes}</td></tr>")
    schemas = "".join(
        f"<h3 id='{n}'>{n}</h3><pre>{html.escape(json.dumps(s, indent=2))}</pre>"
        for n, s in _SPEC["components"]["schemas"].items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Baygate API</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
table{{border-collapse:collapse}}pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head><body>
<h1>Baygate API</h1><p>{html.escape(_SPEC["info"]["description"])} Machine-readable: <a href="/openapi.json">/openapi.json</a>.</p>
<table><tr><th>Endpoint</th><th>What</th><th>Auth</th><th>Body</th><th>Answers</th></tr>{"".join(rows)}</table>
<h2>Schemas</h2>{schemas}</body></html>"""
    return web.Response(text=page, content_type="text/html")


def register(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
