"""The gateway's use cases: submit a native or JSON transfer, and the batched acceptance loop.

Concurrent submissions are gathered by one acceptance batcher per process and accepted in
one database transaction per batch (at most `accept_batch_max` transactions, waiting at most
`accept_linger_ms` for company). Up to `accept_concurrency` batches are in flight at once: a
batch spends most of its time waiting on database round trips, and the next one can be
decoded, routed and started meanwhile (docs/decisions/0007-gateway-throughput.md). Callers wait on a future; the queue is bounded
(`accept_queue_depth_max`): past it a submission is refused with 503 rather than piling up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from adapters.base import DecodedMessage, StatusReport
from adapters.registry import get_adapter
from clearing.model import Transfer, TxStatus
from clearing.reasons import Reason, Rejection
from gateway import audit, lsm_store, metrics
from gateway.acceptance import CANDIDATES_PER_BATCH_MAX, Candidate, Outcome, accept_batch
from gateway.batcher import BatcherFull, MicroBatcher
from gateway.logging import get_logger
from gateway.routing import Directory, Participant, ProxyResolver, Route, route
from gateway.submission import authorize, prepare, reports_for

_log = get_logger("baygate.service")
QUOTE_REUSE_MARGIN_S = 10.0


class Overloaded(Exception):
    """The acceptance queue is full: answer 503 with Retry-After."""


class AcceptLoop:
    """Batches concurrent candidates into one acceptance transaction (gateway.batcher)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clearing: Any,
        clock: Callable[[], datetime],
        transfer_timeout_s: float,
        *,
        accept_batch_max: int = 1_000,
        accept_linger_ms: float = 1.0,
        accept_queue_depth_max: int = 20_000,
        accept_concurrency: int = 2,
        accept_extra_batch_items_min: int = 1,
    ) -> None:
        self.pool = pool
        self.clearing = clearing
        self.clock = clock
        self.transfer_timeout_s = transfer_timeout_s
        self.on_accepted: Callable[[Sequence[Outcome]], None] | None = None
        # Liquidity-saving queue: how long a queued transfer may wait, and the next
        # scheduled window close (None: no schedule), which it never waits past.
        self.queue_ttl_s = lsm_store.QUEUE_TTL_S_DEFAULT
        self.queue_close_at: Callable[[], datetime | None] | None = None
        self._batcher: MicroBatcher[Candidate, Outcome] = MicroBatcher(
            self._flush, batch_max=min(accept_batch_max, CANDIDATES_PER_BATCH_MAX),
            linger_ms=accept_linger_ms, queue_depth_max=accept_queue_depth_max,
            concurrency=accept_concurrency, extra_batch_items_min=accept_extra_batch_items_min,
            name="accept",
        )

    def start(self) -> None:
        """Workers start on the first submission."""

    async def stop(self) -> None:
        await self._batcher.aclose()

    async def submit(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        try:
            futures = [self._batcher.submit_nowait(c) for c in candidates]
        except BatcherFull as exc:
            raise Overloaded(str(exc)) from None
        return list(await asyncio.gather(*futures))

    async def _flush(self, batch: Sequence[Candidate]) -> Sequence[Outcome]:
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            close_at = self.queue_close_at() if self.queue_close_at is not None else None
            outcomes = await accept_batch(conn, batch, self.clearing, self.clock(), self.transfer_timeout_s,
                                          queue_ttl_s=self.queue_ttl_s, queue_close_at=close_at)
        metrics.observe_stage("accept", time.perf_counter() - started)
        if self.on_accepted is not None:
            self.on_accepted(outcomes)
        return outcomes


class Gateway:
    """Wires adapters, routing, clearing and persistence for the HTTP handlers."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        clearing: Any,
        directory: Directory,
        clock: Callable[[], datetime],
        transfer_timeout_s: float,
        accept: AcceptLoop,
    ) -> None:
        self.pool = pool
        self.clearing = clearing
        self.directory = directory
        self.clock = clock
        self.transfer_timeout_s = transfer_timeout_s
        self.accept = accept
        self.proxies = ProxyResolver(pool)
        self._rate_quotes: dict[tuple[str, str], Any] = {}
        self.export_settlement: Callable[[int, str], Awaitable[Any]] | None = None
        # Run before every close (operator or schedule), e.g. the liquidity-saving exact pass
        # on what is still queued; a failure there is logged and the close goes ahead.
        self.before_close: Callable[[], Awaitable[Any]] | None = None
        # Told of every close that succeeded (the next window opened at `close.closed_at`).
        self.on_closed: Callable[[Any], None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def refresh_directory(self, force: bool = False) -> None:
        if force or self.directory.stale():
            await self.directory.refresh(self.pool)

    async def _quotes(
        self, transfers: Sequence[Transfer], routes: Sequence[Route | Rejection]
    ) -> dict[Any, Any]:
        """Quotes this batch needs: explicit quote ids, else a current-rate quote per pair.

        Current-rate quotes are reused while they have `QUOTE_REUSE_MARGIN_S` left, so a busy
        corridor creates one quote row per pair per quote lifetime, not one per transfer.
        """
        quotes: dict[Any, Any] = {}
        now = self.clock()
        for t, r in zip(transfers, routes, strict=True):
            if t.quote_id is not None and ("id", t.quote_id) not in quotes:
                q = await self._quote_by_id(t.quote_id)
                if q is not None:
                    quotes[("id", t.quote_id)] = q
                continue
            if not isinstance(r, Route) or r.fx_provider is None:
                continue
            pair = (t.amount.currency, r.destination_currency)
            if pair in quotes:
                continue
            cached = self._rate_quotes.get(pair)
            if cached is None or (cached.expires_at - now).total_seconds() < QUOTE_REUSE_MARGIN_S:
                cached = await self.clearing.create_quote(pair[0], pair[1], fx_provider=r.fx_provider.id)
                self._rate_quotes[pair] = cached
            quotes[pair] = cached
        return quotes

    async def _quote_by_id(self, quote_id: str) -> Any:
        return await self.clearing.quote(quote_id)

    async def close_window(self, actor: str) -> tuple[Any, str]:
        """Close the open window, journal the close, and start writing its settlement files.

        Returns the clearing result and the audit chain head recorded with the close (the
        settlement manifest carries it). Files are written in the background: closing never
        waits for an export of a large window. `before_close` runs first, so what it releases
        is reserved before the close takes its totals.
        """
        if self.before_close is not None:
            try:
                await self.before_close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                _log.warning("before_close_failed", error=type(exc).__name__, detail=str(exc)[:200])
        close = await self.clearing.close_window(actor)
        if self.on_closed is not None:
            self.on_closed(close)
        async with self.pool.acquire() as conn, conn.transaction():
            head = await audit.append(conn, [audit.AuditEvent(
                "window.closed", f"window-{close.window_id}", close.closed_at,
                {"actor": actor, "next_window_id": close.next_window_id,
                 "settlement_id": close.settlement_id,
                 "gross_minor": {n.currency: n.gross_minor for n in close.netting},
                 "net_minor": {n.currency: n.net_minor for n in close.netting}},
            )])
        if self.export_settlement is not None:
            task = asyncio.create_task(self._export(close.window_id, str(head)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return close, str(head)

    async def _export(self, window_id: int, head: str) -> None:
        assert self.export_settlement is not None
        try:
            await self.export_settlement(window_id, head)
        except Exception as exc:  # the operator can re-run `baygate settlement export`
            _log.error("settlement_export_failed", window_id=window_id, error=repr(exc))

    async def drain(self) -> None:
        """Wait for background settlement exports and stop the proxy look-ups (shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.proxies.aclose()

    async def submit_transfers(self, sender: Participant, transfers: Sequence[Transfer]) -> list[Outcome]:
        await self.refresh_directory()
        proxies_wanted = [
            (str(t.creditor_account.proxy.type), t.creditor_account.proxy.value)
            for t in transfers
            if t.creditor_account.proxy is not None
        ]
        try:
            proxies = await self.proxies.lookup(proxies_wanted)
        except BatcherFull as exc:
            raise Overloaded(str(exc)) from None
        routes = [route(t, sender, self.directory, proxies) for t in transfers]
        quotes = await self._quotes(transfers, routes)
        expires_at = self.clock() + timedelta(seconds=self.transfer_timeout_s)
        candidates = [
            prepare(t, sender, self.directory, proxies, quotes, expires_at, routed=r)
            for t, r in zip(transfers, routes, strict=True)
        ]
        outcomes = await self.accept.submit(candidates)
        for o, c in zip(outcomes, candidates, strict=True):
            t = c.transfer
            if o.replay:
                metrics.record_idempotent_replay(t.source_scheme)
            elif o.status == TxStatus.RJCT:
                metrics.record_rejection(str(o.reason), t.source_scheme)
                metrics.record_transfer(t.source_scheme, t.destination_scheme, "RJCT")
                rule = corridor_rule(o.message)
                if rule is not None:
                    metrics.record_corridor_limit_hit(f"{t.source_scheme}>{t.destination_scheme}", rule)
        return outcomes

    async def submit_native(self, sender: Participant, scheme: str, body: bytes) -> tuple[int, bytes]:
        """Decode, accept and answer in the sender's own format. Raises Forbidden (403)."""
        adapter = get_adapter(scheme)
        decoded: DecodedMessage = adapter.decode_transfers(body)
        now = self.clock()
        report_id = f"BG{now:%Y%m%d%H%M%S%f}"[:35]
        if decoded.error is not None:
            err = decoded.error
            metrics.record_rejection(str(err.code), scheme)
            report = StatusReport(decoded.msg_id, None, None, TxStatus.RJCT, err.code,
                                  f"{err.path}: {err.message}" if err.path else err.message)
            return 400, adapter.encode_status_report(
                [report], msg_id=report_id, created_at=now, original_msg_id=decoded.msg_id)
        authorize(sender, decoded)
        good = [tx.transfer for tx in decoded.txs if tx.transfer is not None]
        outcomes = iter(await self.submit_transfers(sender, good))
        per_tx = [next(outcomes) if tx.transfer is not None else None for tx in decoded.txs]
        for tx in decoded.txs:
            if tx.transfer is None:
                metrics.record_rejection(str(tx.errors[0].code), scheme)
        reports = reports_for(decoded, per_tx)
        return 200, adapter.encode_status_report(
            reports, msg_id=report_id, created_at=now, original_msg_id=decoded.msg_id)


_RULE_WORDS = (
    ("per-transaction", "per_transaction"), ("daily", "daily"), ("yearly", "yearly"),
    ("service hours", "service_hours"), ("identification", "identification"), ("not allowed", "currency"),
)


def corridor_rule(message: str | None) -> str | None:
    """The kind of corridor rule a refusal names ("corridor <name>: ..."), for the metric label."""
    if not message or not message.startswith("corridor "):
        return None
    for words, rule in _RULE_WORDS:
        if words in message:
            return rule
    return "other"


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = ["AcceptLoop", "Gateway", "Overloaded", "Reason", "utc_now"]
