"""Delivery worker: the transactional outbox, drained to receiving providers and senders.

Theory of operation
-------------------
Acceptance writes one `deliver` outbox row per reserved transfer in the same transaction that
records it. This worker claims due rows with a lease (`next_attempt_at` pushed past the
attempt's timeout, `FOR UPDATE SKIP LOCKED`), so a crash mid-attempt only delays a retry:

- deliver: encode the transfer in the receiver's scheme, POST it signed by the gateway to
  `{endpoint_url}/transfers`, read the receiver's status reply. Accept -> commit; reject ->
  abort with the receiver's reason; no usable answer -> retry with exponential backoff and
  jitter, until the transfer's own expiry, when the expiry sweep aborts it with AB05. The
  deliveries due to one receiver share a message, each transaction naming Baygate's id
  (ClrSysRef); the answer decides each transfer alone.
- callback: when a transfer ends (committed, aborted, expired), a `callback` row tells the
  sender, in its own scheme, at `{endpoint_url}/status`; bounded attempts, then the sender
  can still GET /v1/transfers/{id}.
- notice: when a transfer expires after a delivery attempt was made, the receiver may hold
  it as accepted (its answer came too late, or was lost, or the gateway stopped before
  committing). A `notice` row tells the receiver, in its own scheme, at
  `{endpoint_url}/status`: a status report RJCT AB05 naming the delivered transfer, on which
  it reverses any credit it applied. Retried far longer than a callback: it is money.

Commit, abort and expiry are exactly-once in the clearing store; the gateway's own record
follows the store's final state, so a redelivery after a crash converges on the same answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.base import AdapterError, StatusReport, TranslationError
from adapters.registry import get_adapter
from clearing.model import TransferState, TxStatus
from clearing.reasons import Reason
from clearing.twophase import Event
from gateway import audit, metrics, transfer_json
from gateway.auth import sign_request
from gateway.batcher import MicroBatcher
from gateway.logging import get_logger
from gateway.waits import wait_event

GATEWAY_KEY_ID = "baygate"
# Every message the gateway sends (deliveries, callbacks, notices) has an id with this prefix,
# so a provider reading a status report at its /status endpoint can tell a report about a
# message the gateway delivered to it (a notice) from one about its own message (a callback).
GATEWAY_MSG_ID_PREFIX = "BG"
# What a lost or absent database raises; an attempt that meets one is retried after its lease.
# InternalClientError: asyncpg's protocol state after the server ended a session mid-statement.
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
              TimeoutError)
_log = get_logger("baygate.delivery")

# Claims due rows with what their attempt needs from the transfer (NULLs when it is gone),
# so that an attempt costs no read of its own: the stored transfer for a delivery, its
# transaction id for a status report. The claim clock spaces claims a linger apart across
# every process on the database: a claim that finds it set less than its linger before its
# own time ($1) takes nothing, and one that takes rows, fewer than its limit ($3), sets it
# (a full claim leaves it, so that the rest is claimed at once). A clock further ahead than
# its linger (a process whose clock runs ahead, or a clock set back) holds nothing back.
# Concurrent claims queue on the clock's row lock; the one behind sees the clock just set.
# The claim that sets the clock sets the next linger too: from $4 when rows came slowly to
# $5 when they came at $6 rows a second or faster, by the rate since the clock was last set
# (the rows of full claims meanwhile counted: `rows_since`).
_CLAIM = """
WITH gate AS (
    SELECT claimed_at, rows_since FROM outbox_claim_clock
     WHERE claimed_at <= $1::timestamptz - make_interval(secs => linger_s)
        OR claimed_at > $1::timestamptz + make_interval(secs => linger_s)
       FOR UPDATE
), due AS (
    SELECT id, transfer_id FROM outbox
     WHERE done_at IS NULL AND next_attempt_at <= $1 AND EXISTS (SELECT 1 FROM gate)
     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox o SET attempts = o.attempts + 1, next_attempt_at = $2
      FROM due LEFT JOIN transfers t ON t.id = due.transfer_id
     WHERE o.id = due.id
    RETURNING o.id, o.transfer_id, o.kind, o.attempts, t.id AS found,
              CASE WHEN o.kind = 'deliver' THEN t.transfer END AS transfer,
              t.transfer->>'tx_id' AS tx_id, t.receiver_id, t.state, t.expires_at, t.sender_id,
              t.msg_id, t.end_to_end_id, t.tx_status, t.reason, t.reason_message
), pace AS (
    SELECT n.rows, CASE WHEN g.claimed_at < $1
                        THEN $4::float8 + ($5::float8 - $4::float8)
                             * least(1.0, (n.rows + g.rows_since) / $6::float8
                                          / EXTRACT(EPOCH FROM $1 - g.claimed_at)::float8)
                        ELSE $4::float8 END AS linger_s
      FROM gate g, (SELECT count(*) AS rows FROM claimed) n
), tick AS (
    UPDATE outbox_claim_clock c
       SET claimed_at = CASE WHEN pace.rows < $3 THEN $1 ELSE c.claimed_at END,
           linger_s = CASE WHEN pace.rows < $3 THEN pace.linger_s ELSE c.linger_s END,
           rows_since = CASE WHEN pace.rows < $3 THEN 0 ELSE c.rows_since + pace.rows END
      FROM pace WHERE pace.rows >= 1
)
SELECT claimed.*, (SELECT linger_s FROM pace) AS linger_s FROM claimed
"""

_CLAIM_CLOCK = "SELECT claimed_at, linger_s FROM outbox_claim_clock"
# The clock's row, put back if it was deleted: without it no claim would go ahead.
_CLAIM_CLOCK_RESTORE = """
INSERT INTO outbox_claim_clock (claimed_at) VALUES ('1970-01-01 00:00:00+00')
ON CONFLICT DO NOTHING
"""

# Due again at once, and ahead of deliveries never tried (claims go oldest due first): these
# are the ones a receiver may already hold.
_RECLAIM = """
UPDATE outbox SET next_attempt_at = least(created_at, $1)
 WHERE done_at IS NULL AND kind = 'deliver' AND attempts > 0 AND next_attempt_at > $1
"""

_DONE_MANY = "UPDATE outbox SET done_at = $2 FROM unnest($1::bigint[]) AS d(id) WHERE outbox.id = d.id"

# The final states of a batch, their history events and the callbacks to the senders, in one
# statement: only transfers that were not final yet get an event and a callback. The
# deliveries whose answers decided them ($7) are marked done in the same statement.
_FINISH_MANY = """
WITH f AS (
    UPDATE transfers t SET state = u.state, tx_status = u.tx_status, reason = u.reason,
           reason_message = u.msg, updated_at = $6
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, state, tx_status, reason, msg)
    WHERE t.id = u.id AND t.state NOT IN ('COMMITTED', 'ABORTED', 'EXPIRED', 'REJECTED')
    RETURNING t.id, t.state, t.tx_status, t.reason, t.reason_message, t.source_scheme,
              t.destination_scheme, t.created_at
), events AS (
    INSERT INTO transfer_events (transfer_id, at, state, tx_status, reason, detail)
    SELECT f.id, $6, f.state, f.tx_status, f.reason, f.reason_message FROM f
), callbacks AS (
    INSERT INTO outbox (transfer_id, kind, next_attempt_at, created_at)
    SELECT f.id, 'callback', $6, $6 FROM f
    ON CONFLICT (transfer_id, kind) DO NOTHING
), notices AS (
    INSERT INTO outbox (transfer_id, kind, next_attempt_at, created_at)
    SELECT f.id, 'notice', $6, $6 FROM f
     WHERE f.state = 'EXPIRED'
       AND EXISTS (SELECT 1 FROM outbox d WHERE d.transfer_id = f.id AND d.kind = 'deliver' AND d.attempts > 0)
    ON CONFLICT (transfer_id, kind) DO NOTHING
), delivered AS (
    UPDATE outbox SET done_at = $6 FROM unnest($7::bigint[]) AS d(id) WHERE outbox.id = d.id
)
SELECT id, state, tx_status, reason, source_scheme, destination_scheme, created_at FROM f
"""


@dataclass
class DeliveryConfig:
    attempt_timeout_s: float = 5.0
    commit_slack_s: float = 1.0  # an answer leaves at least this long to commit before expiry
    attempt_s_min: float = 0.5  # a delivery attempt gets at least this long, or is not made
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0
    callback_attempts_max: int = 8
    callback_batch_max: int = 100  # transfers told in one status report to their sender
    delivery_batch_max: int = 50  # transfers in one delivery message to a receiver
    notice_attempts_max: int = 200  # at backoff_max_s apart: half an hour of retries
    # Attempts (messages) in flight at which claims pause; one claim starts at most one
    # attempt per row it takes, and outgoing connections stay within this many.
    in_flight_max: int = 256
    # Outbox rows in one claim: the longest linger's deliveries and callbacks at 2,000
    # transfers/s, so that at the rates this gateway sustains one claim takes all that is
    # due and each receiver gets one message per linger, not one per claim. A full claim is
    # followed by the next at once.
    claim_batch_max: int = 1_200
    poll_interval_s: float = 0.2
    # After a claim that found rows, the next, by this process or any other on the database
    # (the claim clock, migrations/0070 to 0090), waits a linger even when woken earlier:
    # while transfers keep coming, each claim gathers more of them into each receiver's
    # message (decision 0007, changes 13, 17, 21 and 22). The linger follows the rate the
    # claim found rows at: `claim_linger_s` when they come slowly, rising in proportion up to
    # `claim_linger_max_s` at `claim_linger_max_rows_per_s` (deliveries and callbacks: about
    # two rows per transfer) and above, where the machine's CPU, not the wait, limits how many
    # transfers go through. A delivery waits at most `claim_linger_max_s` more.
    claim_linger_s: float = 0.1
    claim_linger_max_s: float = 0.3
    claim_linger_max_rows_per_s: float = 1_500.0
    response_bytes_max: int = 1024 * 1024
    expiry_sweep_interval_s: float = 0.5
    expiry_batch_max: int = 1000
    finish_batch_max: int = 1000
    end_concurrency: int = 3  # answers' transactions (_end_batch) running at once

    def __post_init__(self) -> None:
        if not 0 <= self.claim_linger_s <= self.claim_linger_max_s <= 60:
            raise ValueError("claim lingers must satisfy 0 <= claim_linger_s <= claim_linger_max_s <= 60")
        if self.claim_linger_max_rows_per_s <= 0:
            raise ValueError("claim_linger_max_rows_per_s must be positive")


@dataclass
class DeliveryWorker:
    pool: asyncpg.Pool
    clearing: Any
    directory: Any
    clock: Callable[[], datetime]
    gateway_key: Ed25519PrivateKey
    config: DeliveryConfig = field(default_factory=DeliveryConfig)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _finisher: MicroBatcher[_Final, None] | None = None
    _doner: MicroBatcher[int, None] | None = None
    _ender: MicroBatcher[_EndItem, None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        conn = aiohttp.TCPConnector(limit=self.config.in_flight_max, limit_per_host=self.config.in_flight_max)
        self._session = aiohttp.ClientSession(connector=conn, auto_decompress=False)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="delivery-claim"),
            asyncio.create_task(self._expiry_loop(), name="delivery-expiry"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in list(self._in_flight):
            t.cancel()
        for t in [*self._tasks, *self._in_flight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for batcher in (self._ender, self._finisher, self._doner):
            if batcher is not None:
                await batcher.aclose()
        if self._session is not None:
            await self._session.close()

    # --- loops ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        await self._reclaim()
        while True:
            try:
                claimed, wait_s = await self._claim()
            except _DB_ERRORS as exc:
                _log.warning("outbox_claim_failed", error=type(exc).__name__)
                claimed, wait_s = [], None
            for rows in _attempt_groups(claimed, self.config.callback_batch_max, self.config.delivery_batch_max):
                task = asyncio.create_task(self._attempt(rows))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(claimed) >= self.config.claim_batch_max:
                continue
            self._wake.clear()
            if claimed:
                linger_s = claimed[0]["linger_s"]
                metrics.observe_claim_linger(linger_s)
                await asyncio.sleep(linger_s)
            elif wait_s is not None:
                # Another process claimed within the linger: its claim took what was due
                # then, and the next one, by whichever process comes first, is due at once
                # when the linger ends.
                await asyncio.sleep(wait_s)
                continue
            await wait_event(self._wake, self.config.poll_interval_s)

    async def _reclaim(self) -> None:
        """Make deliveries claimed before a restart due at once instead of when their lease
        ends, and first in line. A crash mid-attempt may leave the receiver holding the
        transfer: asked again soon (it answers a copy from memory), the transfer commits
        before it expires, even with a backlog of deliveries waiting.
        With several processes on one database a start also repeats deliveries another
        process has in hand; receivers deduplicate them and commits are idempotent."""
        try:
            async with self.pool.acquire() as conn:
                status = await conn.execute(_RECLAIM, self.clock())
        except _DB_ERRORS as exc:
            _log.warning("outbox_reclaim_failed", error=type(exc).__name__)
            return
        if status != "UPDATE 0":
            _log.info("outbox_reclaimed", rows=int(status.split()[-1]))

    async def _claim(self) -> tuple[list[asyncpg.Record], float | None]:
        """Due rows (each carrying the linger to wait after them), and when none: how long
        until the claim clock lets this process claim (None when it did and nothing was
        due)."""
        if len(self._in_flight) >= self.config.in_flight_max:
            return [], None
        cfg = self.config
        now = self.clock()
        lease = now + timedelta(seconds=cfg.attempt_timeout_s * 2 + 1)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                _CLAIM, now, lease, cfg.claim_batch_max, cfg.claim_linger_s,
                cfg.claim_linger_max_s, cfg.claim_linger_max_rows_per_s,
            )  # fmt: skip
            if rows:
                return list(rows), None
            clock = await conn.fetchrow(_CLAIM_CLOCK)
            if clock is None:
                _log.warning("outbox_claim_clock_restored")
                await conn.execute(_CLAIM_CLOCK_RESTORE)
                return [], 0.0
        claimed_at, linger = clock["claimed_at"], timedelta(seconds=clock["linger_s"])
        if not now - linger < claimed_at <= now + linger:
            return [], None
        return [], min((claimed_at + linger - now).total_seconds(), clock["linger_s"])

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.expiry_sweep_interval_s)
            try:
                expired = await self.clearing.expire_due(self.clock(), self.config.expiry_batch_max)
                for tid in expired:
                    await self._finish(tid, TransferState.EXPIRED, Reason.AB05,
                                       "the receiving provider did not accept in time")
            except _DB_ERRORS as exc:
                _log.warning("expiry_sweep_failed", error=type(exc).__name__)

    async def _attempt(self, rows: list[asyncpg.Record]) -> None:
        """One attempt: a notice (one row), the deliveries to one receiver or the callbacks
        to one sender."""
        kind = rows[0]["kind"]
        try:
            if kind == "deliver":
                await (self._deliver(rows[0]) if len(rows) == 1 else self._deliver_group(rows))
            elif kind == "notice":
                await self._notice(rows[0])
            else:
                await self._callbacks(rows)
        except _DB_ERRORS as exc:
            # The lease expires and the rows are claimed again.
            _log.warning("outbox_attempt_failed", kind=kind, error=type(exc).__name__)

    # --- deliver -------------------------------------------------------------------------

    async def _deliver(self, row: asyncpg.Record) -> None:
        tid, rec = row["transfer_id"], row  # the claim carries the transfer's columns
        if rec["found"] is None or rec["state"] != TransferState.RESERVED:
            await self._done("deliver", row["id"])
            return
        budget_s = self._budget_s(rec["expires_at"])
        if budget_s is None:
            await self._too_late(row, rec["expires_at"])
            return
        receiver = self.directory.by_id.get(rec["receiver_id"])
        transfer = transfer_json.loads(rec["transfer"])
        adapter = get_adapter(receiver.scheme)
        try:
            body = adapter.encode_transfer(transfer, msg_id=_msg_id(tid), created_at=self.clock())
        except TranslationError as exc:
            rej = exc.rejections[0]
            await self._abort(tid, rej.code, f"cannot be carried to {receiver.scheme}: {rej.message}")
            await self._done("deliver", row["id"])
            return
        started = time.perf_counter()
        reports = await self._send(receiver, adapter, body, budget_s, [row])
        await self._settle(row, _report_for(reports, transfer), started)

    async def _deliver_group(self, rows: list[asyncpg.Record]) -> None:
        """Reserved transfers to one receiver in one message, whose id follows from the set
        (`_delivery_id`), each transaction naming the transfer's gateway id (ClrSysRef), on
        which the receiver deduplicates. The answer decides each transfer as if it had gone
        alone, and one the answer does not name is retried; a refusal of the whole message
        sends each again alone. Each transfer waits no longer than the one closest to its
        expiry allows."""
        ready: list[asyncpg.Record] = []
        budgets: list[float] = []
        late: list[asyncpg.Record] = []
        for row in rows:
            budget_s = self._budget_s(row["expires_at"])
            if budget_s is None:
                late.append(row)
            else:
                ready.append(row)
                budgets.append(budget_s)
        await asyncio.gather(*(self._too_late(r, r["expires_at"]) for r in late))
        if len(ready) <= 1:
            await asyncio.gather(*(self._deliver(r) for r in ready))
            return
        receiver = self.directory.by_id.get(ready[0]["receiver_id"])
        adapter = get_adapter(receiver.scheme)
        transfers = [transfer_json.loads(r["transfer"]) for r in ready]
        msg_id = _delivery_id([r["transfer_id"] for r in ready])
        try:
            body = adapter.encode_transfers(transfers, msg_id=msg_id, created_at=self.clock())
        except TranslationError:
            # One of them cannot be carried to this scheme: alone, it is aborted with its
            # reason, and the others go as they would have.
            await asyncio.gather(*(self._deliver(r) for r in ready))
            return
        started = time.perf_counter()
        reports = await self._send(receiver, adapter, body, min(budgets), ready)
        if reports and all(_about_whole_message(r) for r in reports) and reports[0].status == TxStatus.RJCT:
            # Refused as a whole, naming no transaction: perhaps for one of them only. Each
            # goes again alone, to be decided by its own answer.
            await asyncio.gather(*(self._deliver(r) for r in ready))
            return
        await asyncio.gather(*(
            self._settle(row, _report_for(reports, t), started) for row, t in zip(ready, transfers, strict=True)
        ))  # fmt: skip

    async def _send(
        self, receiver: Any, adapter: Any, body: bytes, budget_s: float, rows: Sequence[asyncpg.Record]
    ) -> list[StatusReport] | None:
        """POST a delivery message; the receiver's status reports, None without a usable answer."""
        metrics.observe_delivery_batch(len(rows))
        reply = await self._post(f"{receiver.endpoint_url}/transfers", body, adapter.media_type, budget_s)
        for row in rows:
            metrics.record_delivery_attempt(receiver.id, retry=row["attempts"] > 1, ok=reply is not None)
        if reply is None:
            return None
        try:
            return list(adapter.decode_status_reply(reply))
        except AdapterError:
            return None

    async def _settle(self, row: asyncpg.Record, report: StatusReport | None, started: float) -> None:
        """What the receiver's answer about one delivered transfer decides."""
        tid = row["transfer_id"]
        if report is None:
            await self._retry(row, row["expires_at"], "no usable answer")
            return
        metrics.observe_stage("deliver", time.perf_counter() - started)
        if report.status in (TxStatus.ACSP, TxStatus.ACCP, TxStatus.ACSC):
            await self._end(tid, Event.COMMIT, None, None, row["id"])
        elif report.status == TxStatus.RJCT:
            await self._end(tid, Event.ABORT, report.reason or Reason.NARR,
                            report.message or "rejected by the receiving provider", row["id"])
        else:  # PDNG from a receiver: ask again later
            await self._retry(row, row["expires_at"], f"receiver answered {report.status}")

    def _budget_s(self, expires_at: datetime | None) -> float | None:
        """How long an attempt may wait for its answer: `attempt_timeout_s`, cut so that an
        acceptance still arrives, with `commit_slack_s` to spare, before the transfer expires
        (the store does not commit after expiry, and a receiver accepting later would hold a
        credit no payer funds). None when less than `attempt_s_min` is left: too late."""
        if expires_at is None:
            return self.config.attempt_timeout_s
        left_s = (expires_at - self.clock()).total_seconds() - self.config.commit_slack_s
        return min(self.config.attempt_timeout_s, left_s) if left_s >= self.config.attempt_s_min else None

    async def _too_late(self, row: asyncpg.Record, expires_at: datetime) -> None:
        """Too close to expiry to deliver: follow the store once it has ended the transfer (the
        expiry sweep does, or did before a crash), else look again just after the sweep."""
        tid = row["transfer_id"]
        outcome = await self.clearing.transfer_state(tid)
        if outcome.state in (TransferState.COMMITTED, TransferState.ABORTED, TransferState.EXPIRED):
            await self._follow(tid, outcome)
            await self._done("deliver", row["id"])
            return
        when = max(expires_at, self.clock()) + timedelta(seconds=2 * self.config.expiry_sweep_interval_s)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1 AND done_at IS NULL",
                row["id"], when, "too close to expiry to deliver",
            )

    async def _post(self, url: str, body: bytes, media_type: str, timeout_s: float | None = None) -> bytes | None:
        assert self._session is not None
        headers = sign_request("POST", url, {"Content-Type": media_type}, body, GATEWAY_KEY_ID, self.gateway_key)
        try:
            async with asyncio.timeout(timeout_s or self.config.attempt_timeout_s):
                async with self._session.post(url, data=body, headers=headers) as resp:
                    if resp.status != 200:
                        return None
                    data = await resp.content.read(self.config.response_bytes_max + 1)
                    return data if len(data) <= self.config.response_bytes_max else None
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def _retry(self, row: asyncpg.Record, expires_at: datetime | None, error: str) -> None:
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (row["attempts"] - 1))
        delay = random.uniform(delay / 2, delay)  # full jitter, halved floor
        when = self.clock() + timedelta(seconds=delay)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1 AND done_at IS NULL",
                row["id"], when, error[:200],
            )

    async def _done(self, kind: str, outbox_id: int) -> None:
        """Mark an outbox row done; concurrent marks share one statement (see _done_batch)."""
        if self._doner is None:
            self._doner = MicroBatcher(self._done_batch, batch_max=self.config.finish_batch_max,
                                       linger_ms=1.0, queue_depth_max=100_000, name="outbox-done")
        await self._doner.submit(outbox_id)

    async def _done_batch(self, outbox_ids: Sequence[int]) -> list[None]:
        async with self.pool.acquire() as conn:
            await conn.execute(_DONE_MANY, list(set(outbox_ids)), self.clock())
        return [None] * len(outbox_ids)

    async def _commit(self, tid: str) -> None:
        outcome = await self.clearing.commit(tid)
        await self._follow(tid, outcome)

    async def _abort(self, tid: str, reason: Reason | str, message: str) -> None:
        outcome = await self.clearing.abort(tid, str(reason))
        await self._follow(tid, outcome, reason, message)

    async def _follow(self, tid: str, outcome: Any, reason: Any = None, message: str | None = None) -> None:
        """Make the gateway record follow the store's final state (idempotent)."""
        final = _final(tid, outcome.state, outcome.reason, reason, message)
        if final is not None:
            await self._finish(*final)

    async def _finish(self, tid: str, state: TransferState, reason: Reason | None, message: str | None) -> None:
        """Record a final state; concurrent finishes share one transaction (see _finish_batch)."""
        if self._finisher is None:
            self._finisher = MicroBatcher(self._finish_batch, batch_max=self.config.finish_batch_max,
                                          linger_ms=1.0, queue_depth_max=100_000, name="finish")
        await self._finisher.submit((tid, state, reason, message))

    async def _finish_batch(self, items: Sequence[_Final]) -> list[None]:
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            done, events = await self._write_finals(conn, items, now)
            if events:
                await audit.append(conn, events)
        self._finished(done, now)
        return [None] * len(items)

    async def _write_finals(
        self, conn: asyncpg.Connection, items: Sequence[_Final], now: datetime,
        delivered: Sequence[int] = (),
    ) -> tuple[list[asyncpg.Record], list[audit.AuditEvent]]:
        """Final states (the first per transfer), their events and the senders' callbacks, and
        the `delivered` outbox rows marked done, in the caller's transaction: the rows that
        changed and the journal records to append for them (by the caller: the journal head
        comes last in lock order)."""
        first: dict[str, _Final] = {}
        for it in items:
            first.setdefault(it[0], it)
        if not first and not delivered:
            return [], []
        rows = list(first.values())
        ids = [r[0] for r in rows]
        states = [str(r[1]) for r in rows]
        statuses = [str(TxStatus.ACSC if r[1] == TransferState.COMMITTED else TxStatus.RJCT) for r in rows]
        reasons = [r[2] and str(r[2]) for r in rows]
        msgs = [r[3] for r in rows]
        done = await conn.fetch(_FINISH_MANY, ids, states, statuses, reasons, msgs, now, list(delivered))
        changed = {r["id"] for r in done}
        events = [
            audit.AuditEvent(audit.KIND_TRANSFER_STATE, tid, now,
                             {"state": states[i], "status": statuses[i], "reason": reasons[i]})
            for i, tid in enumerate(ids) if tid in changed
        ]
        return list(done), events

    def _finished(self, done: Sequence[asyncpg.Record], now: datetime) -> None:
        """Metrics of committed final states; wake the claim loop for their callbacks."""
        for r in done:
            status = TxStatus.ACSC if r["state"] == TransferState.COMMITTED else TxStatus.RJCT
            metrics.record_transfer(r["source_scheme"], r["destination_scheme"], str(status))
            if r["reason"] is not None:
                metrics.record_rejection(r["reason"], r["source_scheme"])
            metrics.observe_e2e(r["source_scheme"], r["destination_scheme"],
                                max(0.0, (now - r["created_at"]).total_seconds()))
        if done:
            self.wake()

    async def _end(self, tid: str, event: Event, reason: Reason | None, message: str | None, outbox_id: int) -> None:
        """Commit or abort a delivered transfer as its receiver answered, record the final
        state and mark the delivery done. Concurrent answers share one transaction (see
        _end_batch); with a clearing port that cannot join one, each step is its own."""
        if not hasattr(self.clearing, "end_with"):
            if event is Event.COMMIT:
                await self._commit(tid)
            else:
                await self._abort(tid, reason or Reason.NARR, message or "aborted")
            await self._done("deliver", outbox_id)
            return
        if self._ender is None:
            self._ender = MicroBatcher(self._end_batch, batch_max=self.config.finish_batch_max,
                                       linger_ms=1.0, queue_depth_max=100_000,
                                       concurrency=self.config.end_concurrency, name="delivery-end")
        await self._ender.submit((tid, event, reason, message, outbox_id))

    async def _end_batch(self, items: Sequence[_EndItem]) -> list[None]:
        """The receivers' answers of a batch in one transaction: the clearing store moves the
        transfers (commit or abort, exactly once), the gateway's records follow its final
        states, the deliveries are marked done, and the money moves last (lock order,
        gateway.clearing_sql; the journal head after the position rows, as acceptance takes
        them). A crash leaves all of it or none: the delivery is then made again and its
        answer meets the transfer as the store left it."""
        now = self.clock()
        first: dict[str, tuple[Event, str | None]] = {}
        told: dict[str, tuple[Reason | None, str | None]] = {}
        for tid, event, reason, message, _ in items:
            if tid not in first:
                first[tid] = (event, None if reason is None else str(reason)[:140])
                told[tid] = (reason, message)
        outbox_ids = sorted({it[4] for it in items})

        async def records(
            conn: asyncpg.Connection, final: dict[str, Any]
        ) -> tuple[list[asyncpg.Record], list[audit.AuditEvent]]:
            finals = [f for tid, o in final.items()
                      if (f := _final(tid, o.state, o.reason, *told[tid])) is not None]
            return await self._write_finals(conn, finals, now, outbox_ids)

        async def journal(
            conn: asyncpg.Connection, written: tuple[list[asyncpg.Record], list[audit.AuditEvent]]
        ) -> None:
            if written[1]:
                await audit.append(conn, written[1])

        _, (done, _events) = await self.clearing.end_with(first, now, records, journal)
        self._finished(done, now)
        return [None] * len(items)

    # --- callback ------------------------------------------------------------------------

    async def _callbacks(self, rows: list[asyncpg.Record]) -> None:
        """Tell one sender the final status of its transfers: one status report, one
        transaction per transfer, each naming the sender's own message (pacs.002
        TxInfAndSts/OrgnlGrpInf, the ibps receipt's per-transaction original). The report's
        id follows from the set of transfers it tells (`_report_id`); a retry may group
        differently, and a sender reads a repeated final status as the same answer."""
        sender = self.directory.by_id.get(rows[0]["sender_id"]) if rows[0]["found"] is not None else None
        if sender is None or not sender.endpoint_url:
            await asyncio.gather(*(self._done("callback", r["id"]) for r in rows))
            return
        reports = [
            StatusReport(rec["msg_id"], rec["end_to_end_id"], rec["tx_id"], TxStatus(rec["tx_status"]),
                         Reason(rec["reason"]) if rec["reason"] else None, rec["reason_message"],
                         rec["transfer_id"])
            for rec in rows
        ]
        try:
            ok = await self._post_status(sender, reports, _report_id([r["transfer_id"] for r in rows]))
        except AdapterError as exc:
            # Not expressible in the sender's scheme (an id its header cannot carry, say).
            # In a group: tell each transfer alone. Alone: it never will be, so drop it (the
            # sender can still GET the transfer).
            if len(rows) > 1:
                await asyncio.gather(*(self._callbacks([r]) for r in rows))
                return
            _log.error("callback_not_encodable", transfer_id=rows[0]["transfer_id"], error=str(exc))
            await self._done("callback", rows[0]["id"])
            return
        metrics.observe_callback_batch(len(reports))
        # Concurrent marks share one statement (see _done and _done_batch).
        await asyncio.gather(*(
            self._done("callback", r["id"]) if ok or r["attempts"] >= self.config.callback_attempts_max
            else self._retry(r, None, "callback not acknowledged")
            for r in rows
        ))  # fmt: skip

    async def _notice(self, row: asyncpg.Record) -> None:
        """Tell the receiver that a transfer it may have accepted expired unpaid (RJCT AB05).

        The report names the transfer's own message id (`_msg_id(tid)`, that of every attempt
        that delivered it alone), the end-to-end and transaction ids and the gateway's id, as
        a receiver's own answer did; a receiver that got it beside other transfers finds it
        by the gateway's id. A receiver that credited on delivery reverses that credit."""
        tid, rec = row["transfer_id"], row
        receiver = self.directory.by_id.get(rec["receiver_id"]) if rec["found"] is not None else None
        if receiver is None or not receiver.endpoint_url:
            await self._done("notice", row["id"])
            return
        report = StatusReport(_msg_id(tid), rec["end_to_end_id"], rec["tx_id"], TxStatus.RJCT, Reason.AB05,
                              "expired before the gateway committed it: reverse any credit applied", tid)
        ok = await self._post_status(receiver, [report], _msg_id(tid, "N"))
        if ok or row["attempts"] >= self.config.notice_attempts_max:
            metrics.record_notice(receiver.id, outcome="sent" if ok else "abandoned")
            if not ok:
                _log.error("receiver_notice_abandoned", transfer_id=tid, receiver=receiver.id,
                           attempts=row["attempts"])
            await self._done("notice", row["id"])
        else:
            metrics.record_notice(receiver.id, outcome="retry")
            await self._retry(row, None, "notice not acknowledged")

    async def _post_status(self, party: Any, reports: list[StatusReport], msg_id: str) -> bool:
        """POST one status report to a participant's /status endpoint in its own scheme;
        True when acknowledged. Callbacks and notices differ only in what they report. The
        group names the first report's original message; a report about another message
        names its own."""
        adapter = get_adapter(party.scheme)
        body = adapter.encode_status_report(reports, msg_id=msg_id, created_at=self.clock(),
                                            original_msg_id=reports[0].original_msg_id)
        return await self._post(f"{party.endpoint_url}/status", body, adapter.media_type) is not None


_Final = tuple[str, TransferState, Reason | None, str | None]  # id, state, reason, message
_EndItem = tuple[str, Event, Reason | None, str | None, int]  # ... and the delivery's outbox id


def _final(
    tid: str, state: TransferState | None, stored_reason: str | None, reason: Any, message: str | None
) -> _Final | None:
    """The gateway record's final state after the store's: the store's abort reason, else the
    one asked for; None while the transfer is not final in the store."""
    if state == TransferState.COMMITTED:
        return (tid, TransferState.COMMITTED, None, None)
    if state == TransferState.ABORTED:
        return (tid, TransferState.ABORTED, Reason(stored_reason or reason or "NARR"), message or "aborted")
    if state == TransferState.EXPIRED:
        return (tid, TransferState.EXPIRED, Reason.AB05, "the receiving provider did not accept in time")
    return None


def _attempt_groups(
    rows: Sequence[asyncpg.Record], callbacks_max: int, deliveries_max: int
) -> list[list[asyncpg.Record]]:
    """Claimed rows as attempts, claim order kept within each:

    - callbacks to the same sender together, at most `callbacks_max` to a report;
    - deliveries of reserved transfers to the same receiver together, at most
      `deliveries_max` to a message and no two with the same end-to-end id (two senders may
      use one), so that answers without the gateway's id still match them unambiguously;
    - every notice, other delivery and row whose transfer is gone alone."""
    groups: list[list[asyncpg.Record]] = []
    open_groups: dict[tuple[str, str], tuple[list[asyncpg.Record], set[str]]] = {}
    for row in rows:
        key = _group_key(row)
        if key is None:
            groups.append([row])
            continue
        limit = callbacks_max if key[0] == "callback" else deliveries_max
        group, e2e_ids = open_groups.get(key) or ([], set())
        if not group or len(group) >= limit or (key[0] == "deliver" and row["end_to_end_id"] in e2e_ids):
            group, e2e_ids = [], set()
            open_groups[key] = (group, e2e_ids)
            groups.append(group)
        group.append(row)
        e2e_ids.add(row["end_to_end_id"])
    return groups


def _group_key(row: asyncpg.Record) -> tuple[str, str] | None:
    if row["found"] is None:
        return None
    if row["kind"] == "callback":
        return ("callback", row["sender_id"])
    if row["kind"] == "deliver" and row["state"] == TransferState.RESERVED:
        return ("deliver", row["receiver_id"])
    return None


def _set_id(transfer_ids: Sequence[str], kind: str) -> str:
    """The id of a message about a set of transfers (`kind` + "G"): the same for the same
    set, in any order (a retry repeats it), another for another set, so that a provider that
    keys messages by id never sees one id with two contents."""
    digest = hashlib.sha256("\n".join(sorted(transfer_ids)).encode()).hexdigest()
    return f"{GATEWAY_MSG_ID_PREFIX}{kind}G{digest}"[:35]


def _delivery_id(transfer_ids: Sequence[str]) -> str:
    """The id of a delivery message; one transfer alone: `_msg_id(tid)`, as always."""
    return _msg_id(transfer_ids[0]) if len(transfer_ids) == 1 else _set_id(transfer_ids, "D")


def _report_id(transfer_ids: Sequence[str]) -> str:
    """The id of a callback report: the same for the same set of transfers, in any order (a
    retry of a report repeats its id), another for another set, so that a sender that keys
    messages by id never sees one id with two contents. One transfer: `_msg_id(tid, "S")`."""
    return _msg_id(transfer_ids[0], "S") if len(transfer_ids) == 1 else _set_id(transfer_ids, "S")


def _msg_id(tid: str, kind: str = "") -> str:
    """Stable per transfer, so a redelivery carries the same message id."""
    return f"{GATEWAY_MSG_ID_PREFIX}{kind}{tid.replace('-', '')}"[:35]


def _report_for(reports: Sequence[StatusReport] | None, transfer: Any) -> StatusReport | None:
    """The answer about one delivered transfer: the report naming its gateway id, else its
    end-to-end id (unique within a delivery message), else, naming no end-to-end id, its
    transaction id as delivered (ibps.101 writes the end-to-end id when there is none), else
    one about the whole message."""
    if not reports:
        return None
    tx_id = transfer.tx_id or transfer.end_to_end_id
    by_ids = whole = None
    for r in reports:
        if r.gateway_id is not None and r.gateway_id == transfer.id:
            return r
        e2e = r.original_end_to_end_id
        if by_ids is None and (e2e == transfer.end_to_end_id or (e2e is None and r.original_tx_id == tx_id)):
            by_ids = r
        if whole is None and _about_whole_message(r):
            whole = r
    return by_ids or whole


def _about_whole_message(r: StatusReport) -> bool:
    """A status naming no transaction: no end-to-end, transaction or gateway id."""
    return r.is_group and r.gateway_id is None
