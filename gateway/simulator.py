"""Provider simulators: the banks at the far end of Baygate's deliveries, for demos and tests.

One aiohttp app per scheme hosts any number of participants of that scheme:

  POST /providers/{pid}/transfers   a credit transfer delivered by the gateway, in the
                                    scheme's format; answered 200 with the provider's status
                                    report in the same format (ACSP/ACCP accept, RJCT + reason)
  POST /providers/{pid}/status      a status report about a transfer {pid} sent (the final
                                    status), or about one delivered to {pid} (a notice: RJCT
                                    AB05 when it expired unpaid, and the credit is reversed);
                                    answered 200

The same routes are also served under /deliveries/{pid}/.... Every request to them must be
signed by the gateway (RFC 9421, key id "baygate"); anything else is refused 401 before the
body is decoded. GET /_sim/summary and GET /_sim/final/{pid} (unsigned, read-only) show the
books (counters; final callbacks per end-to-end id) to a harness that runs the simulators
in another process (gateway.sim_process); they carry ids and statuses, no payment data.

Behaviour is set by `SimRules` (gateway.sim_state): unknown and closed accounts, random
rejections from a seeded RNG, slow answers, silent participants that hold a request without
answering (until `silent_hold_s_max` or shutdown, so that nothing waits forever), transient
HTTP 500s, and answers lost after the transfer was applied. Redeliveries are deduplicated
and answered with the first decision (see gateway.sim_state).

`run_simulators` starts one app per scheme on loopback ports and stops them again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.base import AdapterError, DecodedTx, StatusReport
from adapters.cn_ibps.adapter import CnIbpsAdapter
from adapters.registry import get_adapter
from clearing.model import SCHEMES, TxStatus
from gateway.auth import AuthError, StaticKeyResolver, Verifier
from gateway.delivery import GATEWAY_MSG_ID_PREFIX
from gateway.sim_state import (
    Decision,
    ProviderBook,
    SimRules,
    SimulatorState,
    decide,
    dedupe_key,
)
from gateway.waits import wait_event

GATEWAY_KEY_ID = "baygate"
PATH_PREFIXES = ("providers", "deliveries")
SHUTDOWN_TIMEOUT_S = 2.0

SIM_STATE = web.AppKey("sim_state", SimulatorState)


@dataclass
class _Runtime:
    scheme: str
    verifier: Verifier
    clock: Callable[[], float]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    msg_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_msg_id(self, pid: str) -> str:
        """A reply message id, unique within this simulator's life: provider, time, sequence."""
        stamp = dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC).strftime("%Y%m%d%H%M%S")
        return f"SIM{pid.replace('-', '')[:10].upper()}{stamp}{next(self.msg_seq):08d}"[:35]

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC)


_SIM_RUNTIME = web.AppKey("sim_runtime", _Runtime)


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


def create_simulator_app(
    scheme: str,
    participants: Mapping[str, Any],
    gateway_public_key: Ed25519PublicKey,
    rules: SimRules | None = None,
    *,
    clock: Callable[[], float] = time.time,
    gateway_key_id: str = GATEWAY_KEY_ID,
) -> web.Application:
    """An app simulating every participant in `participants` (id -> directory entry / code).

    `clock` (epoch seconds) drives signature freshness and reply timestamps.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}")
    rules = rules or SimRules()
    app = web.Application(client_max_size=rules.body_bytes_max)
    app[SIM_STATE] = SimulatorState(scheme, participants, rules)
    resolver = StaticKeyResolver({gateway_key_id: gateway_public_key})
    app[_SIM_RUNTIME] = _Runtime(scheme, Verifier(resolver, clock=clock), clock)
    for prefix in PATH_PREFIXES:
        app.router.add_post(f"/{prefix}/{{pid}}/transfers", _transfers)
        app.router.add_post(f"/{prefix}/{{pid}}/status", _status)
    app.router.add_get("/_sim/summary", _summary)
    app.router.add_get("/_sim/final/{pid}", _finals)

    async def on_shutdown(app: web.Application) -> None:
        app[_SIM_RUNTIME].stopping.set()  # release held requests

    app.on_shutdown.append(on_shutdown)
    return app


async def _authenticate(request: web.Request) -> tuple[ProviderBook, bytes] | web.Response:
    """The book of the addressed participant and the body, or the refusal to send."""
    runtime = request.app[_SIM_RUNTIME]
    body = await request.read()  # bounded by client_max_size (413 beyond)
    try:
        await runtime.verifier.verify(request.method, request.raw_path, request.headers, body)
    except AuthError as exc:
        return web.json_response(
            exc.problem(), status=exc.status, content_type="application/problem+json"
        )
    book = request.app[SIM_STATE].book(request.match_info["pid"])
    if book is None:
        return _problem(404, "Not Found", f"no simulated participant {request.match_info['pid']}")
    return book, body


def _roll(state: SimulatorState, ratio: float) -> bool:
    return ratio > 0 and state.rng.random() < ratio


async def _transfers(request: web.Request) -> web.StreamResponse:
    auth = await _authenticate(request)
    if isinstance(auth, web.Response):
        return auth
    book, body = auth
    state, runtime = request.app[SIM_STATE], request.app[_SIM_RUNTIME]
    rules = state.rules
    book.deliveries += 1
    if book.participant.id in rules.silent_participants or _roll(state, rules.silent_ratio):
        book.held += 1
        await wait_event(runtime.stopping, rules.silent_hold_s_max)
        return _problem(503, "Service Unavailable", "the provider did not answer")
    if _roll(state, rules.http_500_ratio):
        book.failed += 1
        return _problem(500, "Internal Server Error", "transient provider failure")
    adapter = get_adapter(state.scheme)
    decoded = adapter.decode_transfers(body)
    if decoded.error is not None or decoded.msg_id is None:
        book.malformed += 1
        return _problem(400, "Bad Request", f"undecodable message: {decoded.error}")
    reports = [_answer(state, book, decoded.msg_id, tx, tx.clearing_ref) for tx in decoded.txs]
    if _roll(state, rules.lost_answer_ratio):
        book.lost_answers += 1
        return _problem(500, "Internal Server Error", "the answer was lost")
    if rules.delay_ms or rules.delay_jitter_ms:
        jitter_ms = state.rng.randint(0, rules.delay_jitter_ms) if rules.delay_jitter_ms else 0
        await asyncio.sleep((rules.delay_ms + jitter_ms) / 1000)
    msg_id, now = runtime.next_msg_id(book.participant.id), runtime.now()
    if state.scheme == "cn-ibps":
        # The receipt comes from the provider (InstgDrctPty) to whoever instructed it.
        reply = _ibps_replier(book.participant.clearing_code).encode_status_report(
            reports, msg_id=msg_id, created_at=now, original_msg_id=decoded.msg_id,
            instructed_member_id=decoded.instructing_member_id,
        )  # fmt: skip
    else:
        reply = adapter.encode_status_report(
            reports, msg_id=msg_id, created_at=now, original_msg_id=decoded.msg_id
        )
    return web.Response(body=reply, status=200, headers={"Content-Type": adapter.media_type})


@functools.cache
def _ibps_replier(member_id: str) -> CnIbpsAdapter:
    return CnIbpsAdapter(link_member_id=member_id)


def _answer(
    state: SimulatorState, book: ProviderBook, msg_id: str, tx: DecodedTx, gateway_id: str | None
) -> StatusReport:
    """Decide one transaction (or recall the decision for a copy) and build its report line."""
    book.transactions += 1
    if tx.transfer is None:  # the gateway sent something its own adapter refuses
        first = tx.errors[0]
        refused = Decision(TxStatus.RJCT, first.code, first.message)
        return _report(msg_id, tx.end_to_end_id, tx.tx_id, refused, None)
    t = tx.transfer if gateway_id is None else tx.transfer.evolve(id=gateway_id)
    key = dedupe_key(t)
    recalled = book.recall(key)
    if recalled is None:
        decision = decide(t, book.participant, state.scheme, state.rules, state.rng)
        book.record(key, t, decision, msg_id)
    else:
        decision = recalled
        book.duplicates += 1
    return _report(msg_id, t.end_to_end_id, t.tx_id, decision, t.id)


def _report(
    msg_id: str, e2e: str | None, tx_id: str | None, d: Decision, gateway_id: str | None
) -> StatusReport:
    return StatusReport(
        original_msg_id=msg_id,
        original_end_to_end_id=e2e,
        original_tx_id=tx_id,
        status=d.status,
        reason=d.reason,
        message=d.message,
        gateway_id=gateway_id,
    )


async def _status(request: web.Request) -> web.StreamResponse:
    auth = await _authenticate(request)
    if isinstance(auth, web.Response):
        return auth
    book, body = auth
    state = request.app[SIM_STATE]
    if _roll(state, state.rules.callback_500_ratio):
        book.callbacks_failed += 1
        return _problem(500, "Internal Server Error", "transient provider failure")
    adapter = get_adapter(state.scheme)
    try:
        reports = adapter.decode_status_reply(body)
    except AdapterError as exc:
        book.malformed += 1
        return _problem(400, "Bad Request", f"undecodable status report: {exc}")
    told = 0
    for r in reports:
        if r.original_msg_id and r.original_msg_id.startswith(GATEWAY_MSG_ID_PREFIX):
            # A notice about a message the gateway delivered (or tried to deliver) to this
            # provider: RJCT means "expired unpaid"; one never received changes nothing.
            if r.status is TxStatus.RJCT and r.original_end_to_end_id:
                book.reverse(r.original_msg_id, r.original_end_to_end_id, r.gateway_id)
        elif r.original_end_to_end_id:
            book.record_callback(r.original_end_to_end_id, r.status, r.reason)
            told += 1
    book.status_reports += told > 0
    return web.Response(status=200, text="ok")


async def _summary(request: web.Request) -> web.Response:
    """The books' counters, for a harness that runs the simulators in another process."""
    return web.json_response(request.app[SIM_STATE].summary())


async def _finals(request: web.Request) -> web.Response:
    """End-to-end id -> [status, reason] of the first final callback, for one participant."""
    book = request.app[SIM_STATE].book(request.match_info["pid"])
    if book is None:
        return _problem(404, "Not Found", f"no simulated participant {request.match_info['pid']}")
    finals = {e2e: book.final_status(e2e) for e2e in book.callbacks}
    return web.json_response({e: list(f) for e, f in finals.items() if f is not None})


# --- running the three scheme simulators ----------------------------------------------------


@dataclass
class RunningSimulators:
    """Started simulator apps, one per scheme; `stop()` (or leaving `async with`) shuts them."""

    apps: dict[str, web.Application]
    runners: dict[str, web.AppRunner]
    urls: dict[str, str]  # scheme -> base URL, e.g. http://127.0.0.1:9101

    def state(self, scheme: str) -> SimulatorState:
        return self.apps[scheme][SIM_STATE]

    def book(self, pid: str) -> ProviderBook:
        for app in self.apps.values():
            book = app[SIM_STATE].book(pid)
            if book is not None:
                return book
        raise KeyError(pid)

    def summary(self) -> dict[str, dict[str, dict[str, object]]]:
        return {scheme: app[SIM_STATE].summary() for scheme, app in self.apps.items()}

    async def stop(self) -> None:
        runners, self.runners = self.runners, {}
        for runner in runners.values():
            await runner.cleanup()

    async def __aenter__(self) -> RunningSimulators:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _port_of(url: str | None) -> int | None:
    if not url:
        return None
    return urlsplit(url).port


def plan_ports(participants: Iterable[Any]) -> dict[str, int]:
    """Scheme -> port, read from the participants' endpoint URLs (one port per scheme)."""
    ports: dict[str, set[int]] = {}
    for p in participants:
        port = _port_of(getattr(p, "endpoint_url", None))
        if port is not None:
            ports.setdefault(p.scheme, set()).add(port)
    plan: dict[str, int] = {}
    for scheme, found in ports.items():
        if len(found) != 1:
            raise ValueError(f"{scheme}: participants' endpoint URLs use several ports {found}")
        plan[scheme] = found.pop()
    return plan


async def run_simulators(
    participants: Iterable[Any],
    gateway_public_key: Ed25519PublicKey,
    *,
    ports: Mapping[str, int] | None = None,
    rules: SimRules | Mapping[str, SimRules] | None = None,
    host: str = "127.0.0.1",
    roles: tuple[str, ...] = ("provider",),
    clock: Callable[[], float] = time.time,
) -> RunningSimulators:
    """Start one simulator per scheme for the directory entries of the given roles.

    `participants` are directory entries (e.g. `DirectoryIn.participants`) with id, scheme,
    clearing_code, role and endpoint_url. `ports` maps scheme -> port (0 picks a free port);
    without it the ports come from the endpoint URLs. Schemes with no participant or no
    port are not started. On a failure to start, those already started are stopped.
    """
    entries = [p for p in participants if getattr(p, "role", "provider") in roles]
    port_plan = dict(ports) if ports is not None else plan_ports(entries)
    running = RunningSimulators({}, {}, {})
    try:
        for scheme, port in port_plan.items():
            members = {p.id: p for p in entries if p.scheme == scheme}
            if not members:
                continue
            scheme_rules = rules.get(scheme) if isinstance(rules, Mapping) else rules
            app = create_simulator_app(
                scheme, members, gateway_public_key, scheme_rules, clock=clock
            )
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            running.apps[scheme], running.runners[scheme] = app, runner
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0][1] if runner.addresses else port
            running.urls[scheme] = f"http://{host}:{bound}"
    except BaseException:
        await running.stop()
        raise
    return running
