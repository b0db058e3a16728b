"""Configuration from environment variables (pydantic-settings).

Every limit carries its unit in its name. Invalid configuration fails at start with one
line naming the variable (`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.eventloop import DEFAULT as EVENT_LOOP_DEFAULT
from gateway.eventloop import EventLoopKind


class ConfigError(Exception):
    pass


EXTRA_BATCH_ITEMS_MIN_SHARED_PORT = 100


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAYGATE_", extra="ignore", frozen=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Path(".baygate")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Several `baygate serve` processes on one machine share `port` (SO_REUSEPORT: the kernel
    # spreads connections across them), one process per core (decision 0007, change 18).
    reuse_port: bool = False
    # When > 0, this process also listens on this port of its own: where Prometheus scrapes
    # this one process (decision 0004) and an operator reaches it.
    process_port: int = Field(default=0, ge=0, le=65535)
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    auto_migrate: bool = True

    db_pool_min: int = Field(default=2, ge=1, le=100)
    db_pool_max: int = Field(default=16, ge=1, le=200)
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    db_command_timeout_s: float = Field(default=10.0, gt=0, le=600)

    request_body_bytes_max: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)
    shutdown_drain_s: float = Field(default=10.0, gt=0, le=300)

    transfer_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Acceptance batches one process runs at once (gateway/batcher.py); a second starts while
    # one runs only with `accept_extra_batch_items_min` candidates queued. Unset, that is 1 for
    # a lone process and 100 for processes sharing a port, whose batches meet on the same
    # position rows: single transfers then gather into one batch at a time while a bulk
    # message still overlaps the batch before it (decision 0007, change 19).
    accept_concurrency: int = Field(default=2, ge=1, le=8)
    accept_extra_batch_items_min: int | None = Field(default=None, ge=1, le=2_000)

    @property
    def accept_second_batch_items_min(self) -> int:
        if self.accept_extra_batch_items_min is not None:
            return self.accept_extra_batch_items_min
        return EXTRA_BATCH_ITEMS_MIN_SHARED_PORT if self.reuse_port else 1
    # Net allocations before a young-generation garbage collection (gateway/gctune.py);
    # 0 keeps Python's default of 700.
    gc_gen0_allocations: int = Field(default=20_000, ge=0, le=10_000_000)
    # The event loop of `baygate serve` (gateway/eventloop.py).
    event_loop: EventLoopKind = EVENT_LOOP_DEFAULT
    signature_max_age_s: int = Field(default=300, ge=10, le=3600)
    # How often the event loop's lag is sampled (baygate_event_loop_lag_seconds); 0: never.
    event_loop_lag_interval_s: float = Field(default=0.1, ge=0, le=10)

    # Close the open settlement window every this many seconds (0: operators close it by hand).
    # Enable it on one gateway process only: each scheduled process closes on its own.
    window_close_interval_s: int = Field(default=0, ge=0, le=7 * 24 * 3600)
    # A settlement still PENDING_SETTLEMENT this long after its window closed is overdue.
    settlement_deadline_s: int = Field(default=7200, ge=1, le=30 * 24 * 3600)
    # How often the state gauges (positions, window, settlements, outbox, pool) are read.
    metrics_collect_interval_s: float = Field(default=5.0, ge=0.1, le=300)

    # Liquidity-saving mode (docs/decisions/0009): how long a queued transfer may wait (never
    # past the next scheduled close), how often the resolver runs, how many queued transfers
    # of a currency one run looks at (at most 8,000: a release must fit one transaction), and
    # the exact pass on what is still queued when a window closes, with its solver time limit.
    lsm_queue_ttl_s: float = Field(default=600.0, gt=0, le=24 * 3600)
    lsm_resolve_interval_ms: int = Field(default=500, ge=10, le=60_000)
    lsm_snapshot_max: int = Field(default=8_000, ge=1, le=8_000)
    lsm_exact_at_close: bool = True
    lsm_exact_time_limit_s: float = Field(default=5.0, gt=0, le=300)

    # Operators authenticate with a bearer token (file under data_dir when unset).
    operator_token: str | None = None
    # Key for hashing debtor identities (corridor limits); generated under data_dir when unset.
    identity_hash_key: str | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err["loc"] else "?"
        var = "DATABASE_URL" if loc == "DATABASE_URL" else f"BAYGATE_{loc.upper()}"
        raise ConfigError(f"invalid configuration: {var}: {err['msg']}") from None
