"""`baygate serve` as a real child process, which a chaos run kills with SIGKILL and restarts.

The port is chosen once and kept across restarts, so the load driver's base URL stays
valid; between a kill and the restart, connections are refused. Output goes to a log file
per start (`gateway-<n>.log` in the run folder) so that a failure can be read afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import aiohttp

BAYGATE_BIN = Path(sys.executable).with_name("baygate")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
READY_POLL_S = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        log_dir: Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.log_dir = log_dir
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.starts = 0
        self.kills = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BAYGATE_")}
        env.update({
            "DATABASE_URL": self.database_url,
            "BAYGATE_DATA_DIR": str(self.data_dir),
            "BAYGATE_PORT": str(self.port),
            "BAYGATE_HOST": "127.0.0.1",
            "BAYGATE_LOG_FORMAT": "json",
            "BAYGATE_LOG_LEVEL": "warning",
        })  # fmt: skip
        env.update(self.extra_env)
        return env

    async def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> float:
        """Start the gateway and wait for /readyz; returns the seconds it took."""
        assert self._proc is None or self._proc.returncode is not None, "already running"
        self.starts += 1
        started = time.monotonic()
        log = self._open_log()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                str(BAYGATE_BIN), "serve", env=self._env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        finally:
            log.close()
        await self.wait_ready(ready_timeout_s)
        return time.monotonic() - started

    def _open_log(self) -> IO[bytes]:
        return open(self.log_dir / f"gateway-{self.starts}.log", "wb")

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.returncode is not None:
                    raise RuntimeError(f"the gateway exited while starting; see {self.log_dir}")
                try:
                    async with session.get(f"{self.base_url}/readyz") as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(READY_POLL_S)
        raise RuntimeError(f"the gateway was not ready within {timeout_s} s; see {self.log_dir}")

    async def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, exactly as a crash."""
        proc = self._proc
        assert proc is not None and proc.returncode is None, "not running"
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        self.kills += 1

    async def stop(self) -> int | None:
        """SIGTERM and wait for the graceful exit (SIGKILL past STOP_TIMEOUT_S)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        proc.terminate()
        try:
            return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None
