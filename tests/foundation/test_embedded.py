"""The embedded database: `baygate serve` on a fresh data dir, a second process sharing it, and a
clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BAYGATE = str(Path(sys.executable).with_name("baygate"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("gateway not ready in time")


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_serve_on_embedded_database_shared_then_stopped(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(BAYGATE_DATA_DIR=str(tmp_path), BAYGATE_PORT=str(port), BAYGATE_LOG_FORMAT="json")
    serve = subprocess.Popen([BAYGATE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", serve)
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "baygate_build_info" in text
        # A second process on the same data dir uses the running server and leaves it running.
        sample = Path(__file__).resolve().parents[2] / "examples" / "directory.yaml"
        second = subprocess.run([BAYGATE, "participants", "load", str(sample)], env=env,
                                capture_output=True, timeout=60)
        assert second.returncode == 0, second.stderr.decode()
        listed = subprocess.run([BAYGATE, "participants", "list"], env=env, capture_output=True, timeout=60)
        assert b"hk-801" in listed.stdout
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert _postgres_running(tmp_path / "pgdata")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    assert serve.returncode == 0
    # The last process to leave stops the embedded server it shared.
    deadline = time.monotonic() + 15
    while _postgres_running(tmp_path / "pgdata") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postgres_running(tmp_path / "pgdata")
