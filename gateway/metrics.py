"""Prometheus metrics: every metric Baygate exports, defined once, with small recorders.

Theory of operation
- One registry per process (`REGISTRY`), scraped at `/metrics` through `render_latest()`.
  Each gateway process is its own scrape target; multiprocess mode is not used (see
  docs/decisions/0004-metrics-process-model.md).
- Event metrics (counters, histograms) are recorded where the event happens, through the
  `record_*` / `observe_*` helpers below.
- State metrics (positions, caps, window, settlements, outbox, pool, LSM queue) come from
  a periodic collector in the gateway that reads the database and hands a `Snapshot` to
  `set_snapshot()`. The snapshot is swapped in whole and rendered at scrape time, so a
  participant that disappears stops being exported instead of lingering with a stale value.
- Every label value passes through a guard. Closed labels (scheme, currency, reason,
  stage, state) accept only their known values; open labels (participant, route, rule,
  settlement state) accept values of a bounded shape and at most a fixed number of distinct
  values. Anything else is exported as "other", so a bad caller cannot explode the number of
  series. No label ever carries a transfer id, an account or a person's data.
- Amounts are integer minor units (`*_minor`); Prometheus stores them as float64, exact up
  to 2**53, which is above `clearing.money.AMOUNT_MINOR_MAX`.
"""

from __future__ import annotations

import asyncio
import math
import platform
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TypeVar

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from clearing.model import SCHEMES, TransferState, TxStatus
from clearing.money import CURRENCY_EXPONENTS
from clearing.reasons import Reason

OTHER = "other"
UNKNOWN = "unknown"
STAGES = ("accept", "deliver", "commit")
CORRIDORS = tuple(f"{a}>{b}" for a in SCHEMES for b in SCHEMES if a != b)
SETTLEMENT_STATES = (
    "PENDING_SETTLEMENT",
    "PS_TRANSFERS_RECORDED",
    "PS_TRANSFERS_RESERVED",
    "PS_TRANSFERS_COMMITTED",
    "SETTLING",
    "SETTLED",
    "ABORTED",
)
PARTICIPANTS_MAX = 1000
ROUTES_MAX = 64
LIMIT_RULES_MAX = 32
SETTLEMENT_STATES_MAX = 16

# Latency objective: 99% of stages under 1 s, so 1.0 must be a bucket edge.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
E2E_BUCKETS_S = (*LATENCY_BUCKETS_S, 30.0, 60.0)
LSM_DELAY_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)


class _Closed:
    """A label whose values are a fixed set; anything else reads `other`."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(values)

    def __call__(self, value: object) -> str:
        text = str(value)
        return text if text in self.values else OTHER


class _Open:
    """A label of a bounded shape, at most `distinct_max` values; newcomers beyond read `other`."""

    def __init__(self, pattern: str, distinct_max: int) -> None:
        self._re = re.compile(pattern)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.distinct_max = distinct_max

    def __call__(self, value: object) -> str:
        if not isinstance(value, str):
            return OTHER
        if value in self._seen:
            return value
        if not self._re.fullmatch(value):
            return OTHER
        with self._lock:
            if len(self._seen) >= self.distinct_max:
                return OTHER
            self._seen.add(value)
        return value


_scheme = _Closed(SCHEMES)
_dest_scheme = _Closed((*SCHEMES, UNKNOWN))
_tx_status = _Closed(s.value for s in TxStatus)
# A caller holding the internal state gets the ISO status the sender was told.
_STATE_TO_STATUS = {
    TransferState.RECEIVED: TxStatus.PDNG,
    TransferState.QUEUED: TxStatus.PDNG,
    TransferState.RESERVED: TxStatus.ACSP,
    TransferState.COMMITTED: TxStatus.ACSC,
    TransferState.ABORTED: TxStatus.RJCT,
    TransferState.EXPIRED: TxStatus.RJCT,
    TransferState.REJECTED: TxStatus.RJCT,
}


def _status(value: object) -> str:
    """ISO 20022 TxStatus value; a `TransferState` value is mapped to its TxStatus."""
    text = str(value)
    mapped = _STATE_TO_STATUS.get(text)  # type: ignore[call-overload]
    return mapped.value if mapped is not None else _tx_status(text)


_reason = _Closed(r.value for r in Reason)
_currency = _Closed(CURRENCY_EXPONENTS)
_stage = _Closed(STAGES)
_corridor = _Closed(CORRIDORS)
_method = _Closed(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_participant = _Open(r"[a-z0-9][a-z0-9._-]{1,63}", PARTICIPANTS_MAX)  # as the directory
_route = _Open(r"/[A-Za-z0-9_./{}:-]{0,99}", ROUTES_MAX)
_rule = _Open(r"[a-z][a-z0-9_]{0,39}", LIMIT_RULES_MAX)
_settlement_state = _Open(r"[A-Z][A-Z_]{0,39}", SETTLEMENT_STATES_MAX)

# `*_created` series double the exposition and no query here uses them.
disable_created_metrics()
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# --- events -------------------------------------------------------------------------------
TRANSFERS = Counter(
    "baygate_transfers_total",
    "Transfers that reached a final status (ISO 20022 TxStatus), by corridor.",
    ("source_scheme", "destination_scheme", "status"),
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "baygate_rejections_total",
    "Business rejections by ISO 20022 reason code.",
    ("reason", "source_scheme"),
    registry=REGISTRY,
)
IDEMPOTENT_REPLAYS = Counter(
    "baygate_idempotent_replays_total",
    "Repeated submissions answered from the stored result.",
    ("source_scheme",),
    registry=REGISTRY,
)
CORRIDOR_LIMIT_HITS = Counter(
    "baygate_corridor_limit_hits_total",
    "Transfers refused by a corridor limit rule.",
    ("corridor", "rule"),
    registry=REGISTRY,
)
STAGE_LATENCY = Histogram(
    "baygate_stage_latency_seconds",
    "Time spent in one stage of a transfer (accept, deliver, commit).",
    ("stage",),
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
E2E_LATENCY = Histogram(
    "baygate_e2e_latency_seconds",
    "Time from receipt of a transfer to its final state.",
    ("source_scheme", "destination_scheme"),
    buckets=E2E_BUCKETS_S,
    registry=REGISTRY,
)
DELIVERY_ATTEMPTS = Counter(
    "baygate_delivery_attempts_total",
    "Attempts to deliver a message to a participant, first tries and retries.",
    ("participant",),
    registry=REGISTRY,
)
DELIVERY_RETRIES = Counter(
    "baygate_delivery_retries_total",
    "Delivery attempts that were retries.",
    ("participant",),
    registry=REGISTRY,
)
DELIVERY_FAILURES = Counter(
    "baygate_delivery_failures_total",
    "Delivery attempts that failed (timeout, connection error, 5xx, bad answer).",
    ("participant",),
    registry=REGISTRY,
)
NOTICE_OUTCOMES = ("sent", "retry", "abandoned")
CALLBACK_BATCH = Histogram(
    "baygate_callback_batch_transfers",
    "Transfers whose final status one callback status report tells their sender.",
    buckets=(1, 2, 5, 10, 20, 50, 100),
    registry=REGISTRY,
)
DELIVERY_BATCH = Histogram(
    "baygate_delivery_batch_transfers",
    "Transfers one delivery message carries to its receiving participant.",
    buckets=(1, 2, 5, 10, 20, 50),
    registry=REGISTRY,
)
CLAIM_LINGER = Gauge(
    "baygate_delivery_claim_linger_seconds",
    "Wait between outbox claims set by this process's last claim that found rows: longer as "
    "transfers come faster (decision 0007, change 22).",
    registry=REGISTRY,
)
RECEIVER_NOTICES = Counter(
    "baygate_receiver_notices_total",
    "Notices to a receiving participant that a transfer it may have accepted expired unpaid "
    "(outcome: sent, retry, abandoned after the last attempt).",
    ("participant", "outcome"),
    registry=REGISTRY,
)
LSM_RELEASED = Counter(
    "baygate_lsm_released_total",
    "Queued transfers released by the liquidity-saving mechanism.",
    ("currency",),
    registry=REGISTRY,
)
LSM_RELEASED_MINOR = Counter(
    "baygate_lsm_released_minor_total",
    "Value of the transfers released by the liquidity-saving mechanism, in minor units.",
    ("currency",),
    registry=REGISTRY,
)
LSM_QUEUE_DELAY = Histogram(
    "baygate_lsm_queue_delay_seconds",
    "Time a transfer waited in the liquidity-saving queue before release.",
    ("currency",),
    buckets=LSM_DELAY_BUCKETS_S,
    registry=REGISTRY,
)
LSM_LIQUIDITY_EFFICIENCY = Gauge(
    "baygate_lsm_liquidity_efficiency_ratio",
    "Gross value settled per unit of liquidity used, at the last LSM run.",
    ("currency",),
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "baygate_http_request_duration_seconds",
    "HTTP request duration by route template and status class.",
    ("method", "route", "status_class"),
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "baygate_event_loop_lag_seconds",
    "How late this process's event loop ran a timer: work holding the loop, or the process "
    "waiting for a CPU. Every request, answer and delivery of the process waits as long.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "baygate_http_requests_in_flight", "HTTP requests being handled.", registry=REGISTRY
)
DB_READY = Gauge(
    "baygate_db_ready", "1 when the last database readiness check passed.", registry=REGISTRY
)
BUILD = Info("baygate_build", "Version of the running gateway.", registry=REGISTRY)


def _version() -> str:
    try:
        return metadata.version("baygate")
    except metadata.PackageNotFoundError:
        return UNKNOWN


BUILD.info({"version": _version(), "python": platform.python_version()})


def record_transfer(source_scheme: str, destination_scheme: str | None, status: str) -> None:
    """A transfer reached its final status: ISO `TxStatus` (ACSC, RJCT) or a `TransferState`."""
    TRANSFERS.labels(
        _scheme(source_scheme), _dest_scheme(destination_scheme or UNKNOWN), _status(status)
    ).inc()


def record_rejection(reason: str, source_scheme: str) -> None:
    REJECTIONS.labels(_reason(reason), _scheme(source_scheme)).inc()


def record_idempotent_replay(source_scheme: str) -> None:
    IDEMPOTENT_REPLAYS.labels(_scheme(source_scheme)).inc()


def record_corridor_limit_hit(corridor: str, rule: str) -> None:
    """`corridor` is "source>destination", e.g. "hk-fps>cn-ibps"; `rule` a rule name."""
    CORRIDOR_LIMIT_HITS.labels(_corridor(corridor), _rule(rule)).inc()


def observe_stage(stage: str, seconds: float) -> None:
    STAGE_LATENCY.labels(_stage(stage)).observe(seconds)


def observe_e2e(source_scheme: str, destination_scheme: str | None, seconds: float) -> None:
    E2E_LATENCY.labels(_scheme(source_scheme), _dest_scheme(destination_scheme or UNKNOWN)).observe(
        seconds
    )


def record_delivery_attempt(participant: str, *, retry: bool, ok: bool) -> None:
    """One delivery attempt; the failure ratio alert divides failures by attempts."""
    p = _participant(participant)
    DELIVERY_ATTEMPTS.labels(p).inc()
    if retry:
        DELIVERY_RETRIES.labels(p).inc()
    if not ok:
        DELIVERY_FAILURES.labels(p).inc()


def observe_callback_batch(transfers: int) -> None:
    """One callback report to a sender, telling `transfers` final statuses."""
    CALLBACK_BATCH.observe(transfers)


def observe_delivery_batch(transfers: int) -> None:
    """One delivery message to a receiver, carrying `transfers` transfers."""
    DELIVERY_BATCH.observe(transfers)


def observe_claim_linger(seconds: float) -> None:
    """The linger the last claim that found rows set for every process's next claim."""
    CLAIM_LINGER.set(seconds)


def record_notice(participant: str, *, outcome: str) -> None:
    """One attempt to send a receiver notice; `abandoned` needs an operator (alerted)."""
    RECEIVER_NOTICES.labels(_participant(participant), outcome).inc()


def record_lsm_release(
    currency: str, released: int, released_minor: int, delays_s: Iterable[float] = ()
) -> None:
    """One LSM run released `released` transfers worth `released_minor`."""
    c = _currency(currency)
    LSM_RELEASED.labels(c).inc(released)
    LSM_RELEASED_MINOR.labels(c).inc(released_minor)
    hist = LSM_QUEUE_DELAY.labels(c)
    for delay in delays_s:
        hist.observe(delay)


def set_lsm_liquidity_efficiency(currency: str, ratio: float) -> None:
    LSM_LIQUIDITY_EFFICIENCY.labels(_currency(currency)).set(ratio)


def observe_http(method: str, route: str | None, status: int, seconds: float) -> None:
    """`route` is the route template ("/v1/transfers/{id}"), never the raw path."""
    status_class = f"{status // 100}xx" if 100 <= status <= 599 else OTHER
    HTTP_DURATION.labels(_method(method), _route(route or "/unmatched"), status_class).observe(
        seconds
    )


async def watch_event_loop(interval_s: float) -> None:
    """Observe, every `interval_s`, how late the running loop wakes a sleeper
    (EVENT_LOOP_LAG). Timed with `time.perf_counter`: uvloop's clock counts whole ms."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(interval_s)
        EVENT_LOOP_LAG.observe(max(0.0, time.perf_counter() - started - interval_s))


def set_db_ready(ready: bool) -> None:
    DB_READY.set(1 if ready else 0)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time each request under its route template; unmatched paths share one series."""
    started = time.perf_counter()
    status = 500
    HTTP_IN_FLIGHT.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_IN_FLIGHT.dec()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        observe_http(request.method, route, status, time.perf_counter() - started)


# --- state snapshots ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PositionRow:
    """One participant's net debit position in one currency (positive: it owes)."""

    participant: str
    currency: str
    position_minor: int
    reserved_minor: int
    net_debit_cap_minor: int
    liquidity_cover_minor: int

    @property
    def cap_utilisation_ratio(self) -> float:
        """(position + reserved) / cap; +Inf when a zero cap carries any exposure."""
        exposure = max(self.position_minor + self.reserved_minor, 0)
        if self.net_debit_cap_minor > 0:
            return exposure / self.net_debit_cap_minor
        return math.inf if exposure > 0 else 0.0


@dataclass(frozen=True, slots=True)
class WindowRow:
    """The open settlement window: its age, its transfers, and how long windows should stay open."""

    open_age_s: float
    open_transfers: int
    schedule_s: float


@dataclass(frozen=True, slots=True)
class SettlementRow:
    """Settlements counted by state; `overdue` = past their confirmation deadline, not final."""

    by_state: Mapping[str, int]
    overdue: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    depth: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class DbPoolRow:
    size: int
    in_use: int
    size_max: int


@dataclass(frozen=True, slots=True)
class LsmQueueRow:
    currency: str
    depth: int
    value_minor: int


@dataclass(frozen=True, slots=True)
class LsmPayerQueueRow:
    """One payer's queue in one currency (the alert on a growing queue is per participant)."""

    participant: str
    currency: str
    depth: int
    value_minor: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the periodic collector read. A part left None keeps its previous value."""

    positions: tuple[PositionRow, ...] | None = None
    window: WindowRow | None = None
    settlements: SettlementRow | None = None
    outbox: OutboxRow | None = None
    db_pool: DbPoolRow | None = None
    lsm_queue: tuple[LsmQueueRow, ...] | None = None
    lsm_payer_queue: tuple[LsmPayerQueueRow, ...] | None = None
    taken_at_s: float = field(default_factory=time.time)


_POSITION_GAUGES = (
    ("baygate_position_minor", "Net debit position (positive: owes), minor units.", "position_minor"),
    ("baygate_reserved_minor", "Amount reserved by transfers in flight, minor units.", "reserved_minor"),
    ("baygate_net_debit_cap_minor", "Net debit cap, minor units.", "net_debit_cap_minor"),
    ("baygate_liquidity_cover_minor", "Liquidity cover (prefunding), minor units.", "liquidity_cover_minor"),
    ("baygate_cap_utilisation_ratio", "(position + reserved) / net debit cap.", "cap_utilisation_ratio"),
)  # fmt: skip
_SCALARS = (
    ("baygate_window_open_age_seconds", "Age of the open settlement window.", "window", "open_age_s"),
    ("baygate_window_open_transfers", "Transfers recorded in the open window.", "window", "open_transfers"),
    ("baygate_window_schedule_seconds", "How long a window should stay open before it closes.", "window", "schedule_s"),
    ("baygate_settlements_overdue", "Settlements past their confirmation deadline.", "settlements", "overdue"),
    ("baygate_outbox_depth", "Messages waiting in the outbox.", "outbox", "depth"),
    ("baygate_outbox_oldest_age_seconds", "Age of the oldest message in the outbox.", "outbox", "oldest_age_s"),
    ("baygate_db_pool_size", "Connections open in the database pool.", "db_pool", "size"),
    ("baygate_db_pool_in_use", "Pool connections checked out.", "db_pool", "in_use"),
    ("baygate_db_pool_max", "Maximum size of the database pool.", "db_pool", "size_max"),
)  # fmt: skip


_Row = TypeVar("_Row")


def _distinct(
    labelled: Iterable[tuple[tuple[str, ...], _Row]],
) -> list[tuple[tuple[str, ...], _Row]]:
    """First row per label set; rows whose labels fold to `other` are left out.

    Two samples with the same labels would make Prometheus refuse the whole scrape, and
    an `other` position or queue value means nothing on its own.
    """
    seen: set[tuple[str, ...]] = set()
    out = []
    for labels, row in labelled:
        if OTHER not in labels and labels not in seen:
            seen.add(labels)
            out.append((labels, row))
    return out


class _SnapshotCollector(Collector):
    """Renders the latest `Snapshot` at scrape time."""

    def __init__(self) -> None:
        self.parts: dict[str, object] = {}
        self.taken_at_s: float | None = None

    def update(self, snap: Snapshot) -> None:
        parts = dict(self.parts)
        for name in ("positions", "window", "settlements", "outbox", "db_pool", "lsm_queue",
                     "lsm_payer_queue"):
            value = getattr(snap, name)
            if value is not None:
                parts[name] = value
        self.parts = parts  # one reference swap: a scrape sees the old or the new whole
        self.taken_at_s = snap.taken_at_s

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families({}, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self.parts, self.taken_at_s)

    def _families(
        self, parts: Mapping[str, object], taken_at_s: float | None
    ) -> Iterator[GaugeMetricFamily]:
        positions: tuple[PositionRow, ...] = parts.get("positions", ())  # type: ignore[assignment]
        rows = _distinct(
            ((_participant(r.participant), _currency(r.currency)), r) for r in positions
        )
        for name, doc, attr in _POSITION_GAUGES:
            fam = GaugeMetricFamily(name, doc, labels=("participant", "currency"))
            for labels, row in rows:
                fam.add_metric(labels, float(getattr(row, attr)))
            yield fam
        for name, doc, part, attr in _SCALARS:
            fam = GaugeMetricFamily(name, doc)
            if (value := parts.get(part)) is not None:
                fam.add_metric((), float(getattr(value, attr)))
            yield fam
        yield from self._settlements(parts.get("settlements"))  # type: ignore[arg-type]
        yield from self._lsm(parts.get("lsm_queue", ()))  # type: ignore[arg-type]
        yield from self._lsm_payers(parts.get("lsm_payer_queue", ()))  # type: ignore[arg-type]
        stamp = GaugeMetricFamily(
            "baygate_snapshot_timestamp_seconds", "Unix time of the last state snapshot."
        )
        if taken_at_s is not None:
            stamp.add_metric((), taken_at_s)
        yield stamp

    @staticmethod
    def _settlements(row: SettlementRow | None) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "baygate_settlements", "Settlements in each state.", labels=("state",)
        )
        if row is not None:
            counts = dict.fromkeys(SETTLEMENT_STATES, 0)
            for state, n in row.by_state.items():
                key = _settlement_state(state)
                counts[key] = counts.get(key, 0) + n
            for state, n in sorted(counts.items()):
                fam.add_metric((state,), float(n))
        yield fam

    @staticmethod
    def _lsm(rows: tuple[LsmQueueRow, ...]) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "baygate_lsm_queue_depth", "Transfers waiting in the LSM queue.", labels=("currency",)
        )
        value = GaugeMetricFamily(
            "baygate_lsm_queue_value_minor",
            "Value waiting in the LSM queue, minor units.",
            labels=("currency",),
        )
        for labels, row in _distinct(((_currency(r.currency),), r) for r in rows):
            depth.add_metric(labels, float(row.depth))
            value.add_metric(labels, float(row.value_minor))
        yield depth
        yield value

    @staticmethod
    def _lsm_payers(rows: tuple[LsmPayerQueueRow, ...]) -> Iterator[GaugeMetricFamily]:
        labels = ("participant", "currency")
        depth = GaugeMetricFamily(
            "baygate_lsm_participant_queue_depth",
            "Transfers a participant has waiting in the LSM queue.",
            labels=labels,
        )
        value = GaugeMetricFamily(
            "baygate_lsm_participant_queue_value_minor",
            "Value a participant has waiting in the LSM queue, minor units.",
            labels=labels,
        )
        keyed = ((( _participant(r.participant), _currency(r.currency)), r) for r in rows)
        for key, row in _distinct(keyed):
            depth.add_metric(key, float(row.depth))
            value.add_metric(key, float(row.value_minor))
        yield depth
        yield value


_SNAPSHOT = _SnapshotCollector()
REGISTRY.register(_SNAPSHOT)


def set_snapshot(snapshot: Snapshot) -> None:
    """Publish what the periodic collector read; parts left None keep their last value."""
    _SNAPSHOT.update(snapshot)


def preinitialise(participants: Iterable[str] = ()) -> None:
    """Create every bounded series at zero, so rates and alerts see the first event.

    Call once at start with the participant ids from the directory.
    """
    for src in SCHEMES:
        IDEMPOTENT_REPLAYS.labels(src)
        for dst in (*SCHEMES, UNKNOWN):
            for status in _tx_status.values:
                TRANSFERS.labels(src, dst, status)
            if dst != UNKNOWN and dst != src:
                E2E_LATENCY.labels(src, dst)
        for reason in _reason.values:
            REJECTIONS.labels(reason, src)
    for stage in STAGES:
        STAGE_LATENCY.labels(stage)
    for currency in CURRENCY_EXPONENTS:
        LSM_RELEASED.labels(currency)
        LSM_RELEASED_MINOR.labels(currency)
        LSM_QUEUE_DELAY.labels(currency)
    for participant in participants:
        p = _participant(participant)
        DELIVERY_ATTEMPTS.labels(p)
        DELIVERY_RETRIES.labels(p)
        DELIVERY_FAILURES.labels(p)
        for outcome in NOTICE_OUTCOMES:
            RECEIVER_NOTICES.labels(p, outcome)


def render_latest(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its content type (OpenMetrics when the scraper asks for it).

    Costs about 4 us per exported sample (13 ms for 200 participants, bench_metrics); it is
    thread-safe, so a handler can run it in `asyncio.to_thread` to keep the loop free.
    """
    if accept:
        encoder, content_type = choose_encoder(accept)
        return encoder(REGISTRY), content_type
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
