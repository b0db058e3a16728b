"""Just enough of a gateway to drive the traffic generator against, with known answers.

It verifies participant signatures, decodes with the sender's adapter and answers every
transaction in the sender's format: BE23 for a proxy the directory lacks; AG01 for a corridor
that is closed, out of service or takes another currency; AM02 over a corridor's limit (the
clearing.corridors defaults at the message's CreDtTm, every debtor counted as new); AM04 above the sender's cap; DUPL
for an end-to-end id reused with other content; the first answer again for an exact resend;
ACSP otherwise. A reference for the answers `gateway.traffic.EXPECTED` allows, not a gateway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from aiohttp import web

from adapters.base import StatusReport
from adapters.registry import get_adapter
from clearing.corridors import DEFAULT_RULES
from clearing.model import Transfer, TxStatus
from clearing.reasons import Reason
from gateway.auth import AuthError, StaticKeyResolver, Verifier, public_key_from_b64
from gateway.client import MESSAGES_PATH


class FakeGateway:
    def __init__(self, directory: Any) -> None:
        self.by_id = {p.id: p for p in directory.participants}
        self.by_code = {(p.clearing_system, p.clearing_code): p for p in directory.participants}
        self.proxies = {(x.type, x.value): x.participant for x in directory.proxies}
        self.caps = {
            (p.id, lim.currency): max(lim.minor("net_debit_cap"), lim.minor("liquidity_cover"))
            for p in directory.participants
            for lim in p.limits
        }
        keys = {p.id: public_key_from_b64(p.public_key_ed25519) for p in directory.participants}
        self.verifier = Verifier(StaticKeyResolver(keys), clock=time.time)
        self.answers: dict[tuple[str, str], tuple[bytes, StatusReport]] = {}
        self.received = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(MESSAGES_PATH.format(scheme="{scheme}"), self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            sender_id = await self.verifier.verify(
                request.method, request.raw_path, request.headers, body
            )
        except AuthError as exc:
            return web.json_response(exc.problem(), status=exc.status)
        self.received += 1
        scheme = request.match_info["scheme"]
        adapter = get_adapter(scheme)
        decoded = adapter.decode_transfers(body)
        if decoded.error is not None:
            report = StatusReport(decoded.msg_id, None, None, TxStatus.RJCT, decoded.error.code)
            return self._reply(adapter, [report], decoded.msg_id, 400)
        digest = hashlib.sha256(body).digest()
        reports = []
        for tx in decoded.txs:
            if tx.transfer is None:
                code = tx.errors[0].code
                reports.append(
                    StatusReport(decoded.msg_id, tx.end_to_end_id, tx.tx_id, TxStatus.RJCT, code)
                )
                continue
            reports.append(self._answer(sender_id, tx.transfer, digest))
        return self._reply(adapter, reports, decoded.msg_id, 200)

    def _answer(self, sender_id: str, t: Transfer, digest: bytes) -> StatusReport:
        key = (sender_id, t.end_to_end_id)
        seen = self.answers.get(key)
        if seen is not None:
            if seen[0] == digest:
                return seen[1]
            return self._report(t, Reason.DUPL)
        report = self._report(t, self._reason(sender_id, t))
        self.answers[key] = (digest, report)
        return report

    def _reason(self, sender_id: str, t: Transfer) -> Reason | None:
        proxy = t.creditor_account.proxy
        if proxy is not None:
            owner = self.proxies.get((str(proxy.type), proxy.value))
            if owner is None:
                return Reason.BE23
            receiver = self.by_id[owner]
        else:
            assert t.creditor_agent is not None
            receiver = self.by_code[(t.creditor_agent.clearing_system, t.creditor_agent.member_id)]
        src = self.by_id[sender_id].scheme
        if DEFAULT_RULES.closed(src, receiver.scheme):
            return Reason.AG01
        rule = DEFAULT_RULES.lookup(src, receiver.scheme)
        if rule is not None:
            if t.amount.currency not in rule.source_currencies:
                return Reason.AG01
            if t.created_at is None or not rule.in_service(t.created_at):  # as sent: no clock
                return Reason.AG01
            limits = [v for v in (rule.per_tx_max_minor, rule.daily_max_minor) if v is not None]
            if limits and rule.counted(t.amount) > min(limits):  # every debtor is new
                return Reason.AM02
        if t.amount.minor > self.caps.get((sender_id, t.amount.currency), 10**15):
            return Reason.AM04
        return None

    @staticmethod
    def _report(t: Transfer, reason: Reason | None) -> StatusReport:
        status = TxStatus.RJCT if reason else TxStatus.ACSP
        return StatusReport(t.msg_id, t.end_to_end_id, t.tx_id, status, reason)

    @staticmethod
    def _reply(
        adapter: Any, reports: list[StatusReport], msg_id: str | None, status: int
    ) -> web.Response:
        body = adapter.encode_status_report(
            reports, msg_id="FAKEGW0001", created_at=dt.datetime.now(dt.UTC), original_msg_id=msg_id
        )
        return web.Response(body=body, status=status, headers={"Content-Type": adapter.media_type})
