"""Wires the running gateway: directory, clearing store, acceptance loop, delivery, metrics.

Used as an aiohttp cleanup context after the database context: everything started here is
stopped, in reverse order, before the pool closes.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from clearing.model import TxStatus
from clearing.ports import WindowClose
from clearing.windows import CloseSchedule
from gateway import api, metrics, settlement_service
from gateway.acceptance import Outcome
from gateway.app import POOL, SETTINGS
from gateway.auth import DirectoryKeyResolver, Verifier
from gateway.clearing_store import ClearingStore
from gateway.collector import ScheduledClose, StateCollector
from gateway.delivery import DeliveryWorker
from gateway.logging import get_logger
from gateway.lsm_runner import LsmRunner
from gateway.lsm_store import LsmStore
from gateway.routing import Directory
from gateway.service import AcceptLoop, Gateway, utc_now
from gateway.signing_keys import load_or_create_signing_key

DELIVERY = web.AppKey("delivery", DeliveryWorker)
LSM = web.AppKey("lsm", LsmRunner)
_log = get_logger("baygate.wiring")


def operator_token(settings_token: str | None, data_dir: Path) -> str:
    """The operator bearer token: from BAYGATE_OPERATOR_TOKEN, else a file under the data dir."""
    if settings_token:
        return settings_token
    return _secret_file(data_dir / "keys" / "operator-token")


def identity_key(settings_key: str | None, data_dir: Path) -> bytes:
    """Key of the keyed hash of debtor identities (corridor limits): setting, else a local file."""
    if settings_key:
        return settings_key.encode()
    return _secret_file(data_dir / "keys" / "identity-hash-key").encode()


def _secret_file(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


class WakingClearingStore(ClearingStore):
    """The clearing store, telling `on_liquidity` when an operator frees liquidity: a cap or
    cover changed, or a settlement confirmed. The liquidity-saving runner then runs at once
    instead of at its next tick."""

    on_liquidity: Callable[[], None] | None = None

    async def set_limits(self, *args: Any, **kwargs: Any) -> Any:
        view = await super().set_limits(*args, **kwargs)
        self._freed()
        return view

    async def confirm_settlement(self, *args: Any, **kwargs: Any) -> Any:
        view = await super().confirm_settlement(*args, **kwargs)
        self._freed()
        return view

    def _freed(self) -> None:
        if self.on_liquidity is not None:
            self.on_liquidity()


class NextClose:
    """When the open window is due to close on the schedule, without a query: set at start
    from the open window, then from each close (the next window opens at its `closed_at`).
    Queued transfers expire by then at the latest (`AcceptLoop.queue_close_at`)."""

    def __init__(self, schedule: CloseSchedule) -> None:
        self.schedule = schedule
        self.at: datetime | None = None

    def window_opened(self, opened_at: datetime) -> None:
        self.at = self.schedule.due_at(opened_at)

    def closed(self, close: WindowClose) -> None:
        self.window_opened(close.closed_at)

    def __call__(self) -> datetime | None:
        return self.at


async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = app[POOL]
    key = load_or_create_signing_key(settings.data_dir)
    directory = Directory()
    await directory.refresh(pool)
    store = WakingClearingStore(pool, utc_now, identity_key=identity_key(settings.identity_hash_key, settings.data_dir))
    accept = AcceptLoop(pool, store, utc_now, settings.transfer_timeout_s,
                        accept_concurrency=settings.accept_concurrency,
                        accept_extra_batch_items_min=settings.accept_second_batch_items_min)
    accept.queue_ttl_s = settings.lsm_queue_ttl_s
    gw = Gateway(pool=pool, clearing=store, directory=directory, clock=utc_now,
                 transfer_timeout_s=settings.transfer_timeout_s, accept=accept)
    delivery = DeliveryWorker(pool, store, directory, utc_now, key)

    async def export_settlement(window_id: int, head: str) -> None:
        result = await settlement_service.export(pool, settings.data_dir, key, window_id, audit_chain_head=head)
        _log.info("settlement_files_written", window_id=window_id, path=str(result.path), entries=result.entries)

    gw.export_settlement = export_settlement
    lsm = LsmRunner(
        LsmStore(pool, utc_now, settings.transfer_timeout_s, snapshot_max=settings.lsm_snapshot_max),
        interval_s=settings.lsm_resolve_interval_ms / 1000, exact_time_limit_s=settings.lsm_exact_time_limit_s,
        exact_at_close=settings.lsm_exact_at_close, on_release=delivery.wake,
    )
    store.on_liquidity = lsm.wake
    gw.before_close = lsm.run_at_close
    schedule = None
    if settings.window_close_interval_s > 0:
        schedule = ScheduledClose(gw, settings.window_close_interval_s, utc_now)
        next_close = NextClose(schedule.schedule)
        next_close.window_opened((await store.open_window())[1])
        accept.queue_close_at = lsm.next_close = next_close
        gw.on_closed = next_close.closed

    def on_accepted(outcomes: Sequence[Outcome]) -> None:
        delivery.wake()
        if any(o.status == TxStatus.PDNG and not o.replay for o in outcomes):
            lsm.wake()

    accept.on_accepted = on_accepted

    def lookup(pid: str) -> str | None:
        p = directory.by_id.get(pid)
        return p.public_key_ed25519 if p is not None else None

    app[api.GATEWAY] = gw
    app[api.VERIFIER] = Verifier(DirectoryKeyResolver(lookup), clock=time.time,
                                 max_age_s=settings.signature_max_age_s)
    app[api.OPERATOR_TOKEN] = operator_token(settings.operator_token, settings.data_dir)
    app[DELIVERY] = delivery
    app[LSM] = lsm
    metrics.preinitialise(directory.by_id)
    accept.start()
    delivery.start()
    lsm.start()
    # Long-lived start-up objects need no rescans by the cyclic collector under load.
    gc.freeze()
    collector = StateCollector(pool, store, utc_now, interval_s=settings.metrics_collect_interval_s,
                               window_close_interval_s=settings.window_close_interval_s,
                               settlement_deadline_s=settings.settlement_deadline_s)
    collector.start()
    if schedule is not None:
        schedule.start()
    try:
        yield
    finally:
        if schedule is not None:
            await schedule.stop()
        await collector.stop()
        await gw.drain()
        await lsm.stop()
        await delivery.stop()
        await accept.stop()
        await store.aclose()
