"""The liquidity-saving runner: expire, resolve and release, every tick or when woken.

Each run, per currency with queued transfers: take a read-only snapshot (`LsmStore.snapshot`),
run `clearing.lsm.resolve` in a worker thread (it is pure and CPU-bound: the event loop keeps
serving), then apply the release in one transaction (`LsmStore.apply`), which re-checks it
against the locked position rows. A release found stale there is dropped whole and the next
run recomputes from fresh data. Runs never overlap: one task does them all.

`wake()` asks for a run now instead of at the next tick: acceptance calls it when it queued
something, and the wiring calls it when an operator changes a cap or cover or a settlement
is confirmed (gateway/wiring.py). Commits and aborts of transfers in flight also free
liquidity; the tick finds those within `interval_s`.

At window close (`run_at_close`, called by `Gateway.close_window` before the close takes its
totals) the exact pass runs on what is still queued, each currency under
`exact_time_limit_s`. Queued transfers expire at the next scheduled close at the latest
(`gateway.lsm_store.queue_expiry`); so that the close's own pass still sees them, a tick
that finds the scheduled close (`next_close`) already due leaves expiry to the run after
the close, for at most CLOSE_GRACE_S.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from clearing import lsm
from gateway import metrics
from gateway.logging import get_logger
from gateway.lsm_store import RELEASE_MAX, LsmStore, QueueEntry
from gateway.waits import wait_event

INTERVAL_S_DEFAULT = 0.5
INTERVAL_S_MIN = 0.01
# Expiry waits for a scheduled close that is due at most this long: a close that keeps
# failing must not keep queued transfers past their time.
CLOSE_GRACE_S = 60.0
# The close's exact pass may take its time limit per currency, plus this for the database.
CLOSE_SLACK_S = 5.0
_log = get_logger("baygate.lsm")


@dataclass
class RunReport:
    """What one run did: released and stale counts per currency, expired ids."""

    released: dict[str, int] = field(default_factory=dict)
    released_minor: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)


@dataclass
class LsmRunner:
    store: LsmStore
    interval_s: float = INTERVAL_S_DEFAULT
    mode: lsm.Pass = lsm.Pass.BYPASS
    exact_time_limit_s: float = lsm.EXACT_TIME_LIMIT_S_DEFAULT
    exact_at_close: bool = True
    on_release: Callable[[], None] | None = None
    # The next scheduled window close (None: no schedule), see the module docstring.
    next_close: Callable[[], datetime | None] | None = None
    runs: int = 0  # runs that looked at a non-empty queue (or published it emptied)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _seen: set[str] = field(default_factory=set)
    _seen_payers: set[tuple[str, str]] = field(default_factory=set)
    _idle: bool = False  # the queue was empty and its gauges published as such

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="lsm-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval_s = max(self.interval_s, INTERVAL_S_MIN)
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                _log.warning("lsm_run_failed", error=type(exc).__name__)
            await wait_event(self._wake, interval_s)

    async def run_once(self, mode: lsm.Pass | None = None, *, expire: bool = True) -> RunReport:
        """One pass over every currency: expire due transfers, then resolve and release.

        `expire=False` leaves due transfers queued (and so in the snapshot) for this run."""
        async with self._lock:
            currencies = await self.store.currencies()
            if not currencies and self._idle:
                return RunReport()  # an empty queue costs one query a tick
            due = expire and not self._close_due()
            report = RunReport(expired=await self.store.expire_due() if due else [])
            for currency in currencies:
                await self._run_currency(currency, mode or self.mode, report)
            self._idle = not await self._publish_queue()
            self.runs += 1
            return report

    async def run_at_close(self) -> RunReport | None:
        """The exact pass on what is still queued, before a window close takes its totals.

        Nothing when `exact_at_close` is off. Transfers due at this very close are still in
        the queue (see `_close_due`) and get this last chance; the next run expires the rest.
        Bounded: each currency's integer program stops at `exact_time_limit_s`, and the
        whole pass at that times the number of currencies plus CLOSE_SLACK_S.
        """
        if not self.exact_at_close:
            return None
        bound_s = self.exact_time_limit_s * max(1, len(await self.store.currencies()))
        try:
            async with asyncio.timeout(bound_s + CLOSE_SLACK_S):
                report = await self.run_once(lsm.Pass.EXACT, expire=False)
        except TimeoutError:
            _log.warning("lsm_close_pass_timed_out", bound_s=bound_s + CLOSE_SLACK_S)
            return None
        _log.info("lsm_close_pass", released=report.released, stale=report.stale)
        return report

    def _close_due(self) -> bool:
        """True while the scheduled close is due but not yet done (for CLOSE_GRACE_S at most)."""
        at = self.next_close() if self.next_close is not None else None
        if at is None:
            return False
        now = self.store.clock()
        return at <= now < at + timedelta(seconds=CLOSE_GRACE_S)

    async def _run_currency(self, currency: str, mode: lsm.Pass, report: RunReport) -> None:
        snap = await self.store.snapshot(currency)
        if not snap.entries:
            return
        res = await asyncio.to_thread(
            lsm.resolve,
            [e.transfer for e in snap.entries],
            snap.balances,
            mode=mode,
            exact_time_limit_s=self.exact_time_limit_s,
        )
        if not res.released:
            return
        by_id: dict[str, QueueEntry] = {e.transfer.id: e for e in snap.entries}
        entries = [by_id[tid] for tid in res.released]
        assert len(entries) <= RELEASE_MAX, "the store snapshots at most RELEASE_MAX"
        result = await self.store.apply(entries, res.released_by)
        if not result.applied:
            report.stale[currency] = report.stale.get(currency, 0) + 1
            _log.info("lsm_release_stale", currency=currency, problems=len(result.problems))
            return
        report.released[currency] = len(result.released)
        report.released_minor[currency] = result.value_minor
        metrics.record_lsm_release(
            currency, len(result.released), result.value_minor, result.delays_s
        )
        used = res.liquidity_used_minor.get(currency, 0)
        if used > 0:
            metrics.set_lsm_liquidity_efficiency(currency, result.value_minor / used)
        if self.on_release is not None:
            self.on_release()

    async def _publish_queue(self) -> bool:
        """Queue depth and value per currency, and per payer and currency, for the metrics
        scrape; False when the queue is empty."""
        depth: dict[str, int] = {}
        value: dict[str, int] = {}
        payers: dict[tuple[str, str], tuple[int, int]] = {}
        for v in await self.store.queue_view():
            depth[v.currency] = depth.get(v.currency, 0) + v.depth
            value[v.currency] = value.get(v.currency, 0) + v.value_minor
            payers[(v.participant_id, v.currency)] = (v.depth, v.value_minor)
        self._seen.update(depth)  # a currency whose queue emptied shows 0, not nothing
        self._seen_payers.update(payers)  # bounded: directory participants x currencies
        rows = tuple(
            metrics.LsmQueueRow(c, depth.get(c, 0), value.get(c, 0)) for c in sorted(self._seen)
        )
        payer_rows = tuple(
            metrics.LsmPayerQueueRow(p, c, *payers.get((p, c), (0, 0)))
            for p, c in sorted(self._seen_payers)
        )
        metrics.set_snapshot(metrics.Snapshot(lsm_queue=rows, lsm_payer_queue=payer_rows))
        return bool(depth)
