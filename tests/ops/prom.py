"""A real Prometheus (Debian's `prometheus` binary) for tests.

`running_prometheus(target_url, work_dir)` starts Prometheus on a free loopback port with
a temporary configuration that scrapes `target_url` every second as job "baygate" (so the
project's alert rules apply; optionally loading rule files, evaluated every second), waits until one scrape has succeeded, yields a `Prometheus`
whose `query()` runs PromQL through the HTTP API, and stops the process on exit.

Without the binary the calling test is skipped, or fails when CI=true: CI installs it
(`.ci/run`), so a missing binary there is a broken build, not a reason to skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml

JOB_DEFAULT = "baygate"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
QUERY_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.2
LOG_TAIL_BYTES_MAX = 4000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of a system binary; skip the test without it, or fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (apt-get install prometheus)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusError(RuntimeError):
    pass


@dataclass
class Prometheus:
    base_url: str
    session: aiohttp.ClientSession
    log_path: Path

    async def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on an API error."""
        url = f"{self.base_url}/api/v1/{path}"
        timeout = aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S)
        async with self.session.get(url, params=params, timeout=timeout) as resp:
            body = await resp.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query: a list of {"metric": {labels}, "value": [ts, "text"]}."""
        data = await self.api("query", query=promql)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    async def query_value(self, promql: str) -> float | None:
        """The single value of an instant query, None when it returned nothing."""
        result = await self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql}: {len(result)} series, expected one")
        return float(result[0]["value"][1])

    async def wait_for(self, promql: str, timeout_s: float = READY_TIMEOUT_S) -> list[dict]:
        """Poll until the query returns at least one series."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = await self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"{promql} still empty after {timeout_s}s")
            await asyncio.sleep(POLL_INTERVAL_S)

    def log_tail(self) -> str:
        data = self.log_path.read_bytes() if self.log_path.exists() else b""
        return data[-LOG_TAIL_BYTES_MAX:].decode(errors="replace")


def write_config(
    path: Path,
    target_url: str,
    rule_files: Sequence[Path] = (),
    scrape_interval_s: float = 1.0,
    job: str = JOB_DEFAULT,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = urlsplit(target_url)
    interval = f"{int(scrape_interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "scheme": parts.scheme or "http",
                "metrics_path": parts.path or "/metrics",
                "scrape_timeout": interval,
                "static_configs": [{"targets": [parts.netloc]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@contextlib.asynccontextmanager
async def running_prometheus(
    target_url: str,
    work_dir: Path,
    *,
    rule_files: Sequence[Path] = (),
    scrape_interval_s: float = 1.0,
    ready_timeout_s: float = READY_TIMEOUT_S,
    job: str = JOB_DEFAULT,
) -> AsyncIterator[Prometheus]:
    binary = require_binary("prometheus")
    config_path = work_dir / "prometheus.yml"
    write_config(config_path, target_url, rule_files, scrape_interval_s, job)
    port = free_port()
    log_path = work_dir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        async with aiohttp.ClientSession() as session:
            prom = Prometheus(f"http://127.0.0.1:{port}", session, log_path)
            await _wait_scraped(prom, proc, ready_timeout_s)
            yield prom
    finally:
        await _stop(proc)


async def _wait_scraped(
    prom: Prometheus, proc: asyncio.subprocess.Process, timeout_s: float
) -> None:
    """Wait until the target has been scraped successfully once."""
    deadline = time.monotonic() + timeout_s
    last = "not started"
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise PrometheusError(f"prometheus exited {proc.returncode}:\n{prom.log_tail()}")
        try:
            targets = (await prom.api("targets", state="active"))["activeTargets"]
            health = [(t["health"], t.get("lastError", "")) for t in targets]
            if any(h == "up" for h, _ in health):
                return
            last = f"targets {health}"
        except (TimeoutError, aiohttp.ClientError, PrometheusError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(POLL_INTERVAL_S)
    raise PrometheusError(f"no successful scrape in {timeout_s}s ({last}):\n{prom.log_tail()}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
