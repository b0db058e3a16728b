"""Load generators for the gateway benchmark, run in processes of their own.

Requests are built and signed before a run and written to a file of raw HTTP/1.1 requests
(`write_requests`): each entry is its length in ASCII, a newline, then the bytes. Since
signatures are replay-protected, every request is sent at most once.

Two drivers read that file:

- closed loop (`run_wrk`): wrk with `bench/wrk_cycle.lua`, `connections` keep-alive
  connections each sending its next request as soon as the previous answer arrives. wrk is
  C and costs the machine far less than the server it drives. wrk runs for its whole
  duration, so a finite set sent once (the end-to-end and bulk phases) goes through
  `python -m bench.load closed`, which stops when the set is answered; so does every closed
  loop when wrk is missing (and cannot be installed).
- open loop (`python -m bench.load open`): request i is due at start + i / rate, whatever
  happened before; its latency runs from that due time, not from when a connection was free
  to send it, so a stall of the server shows in every request it delayed (no coordinated
  omission). Requests wait in a queue for one of at most `connections_max` connections.

Both count answers whose body carries an accepted status (`ACCEPT_MARKERS`: `>ACSP<` in a
pacs.002, `>PR03<` in an ibps.102 receipt), once per transaction, and print one JSON line.
The Python driver runs on the gateway's event loop (uvloop, `gateway.eventloop`), over
asyncio protocols (the open loop with callbacks, no task per request), times requests with
`time.perf_counter` (uvloop's loop clock counts whole milliseconds), and reports its own CPU seconds (`driver_cpu_s`): it
shares the machine with the server it measures. Closed loop, about 38 us per exchange here
against 49 us with asyncio streams; open loop at 1,000/s, 0.80 against 0.98 s of CPU for
10,000 requests, two-fifths of it in the write of each request (the kernel's work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from gateway import eventloop

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_cycle.lua"
ACCEPT_MARKERS = (b">ACSP<", b">PR03<")
HEADER_BYTES_MAX = 64 * 1024
BODY_BYTES_MAX = 16 * 1024 * 1024
LATENCY_SAMPLES_MAX = 1_000_000
CONNECT_TIMEOUT_S = 5.0
WRK_TIMEOUT_S = "10s"
APT_TIMEOUT_S = 300


def raw_request(
    host: str, port: int, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    """One HTTP/1.1 keep-alive request, exactly as it goes on the wire."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def write_requests(path: Path, requests: Sequence[bytes]) -> None:
    with open(path, "wb") as f:
        for r in requests:
            f.write(b"%d\n" % len(r))
            f.write(r)


def read_requests(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    out, i = [], 0
    while i < len(data):
        nl = data.index(b"\n", i)
        n = int(data[i:nl])
        out.append(data[nl + 1 : nl + 1 + n])
        i = nl + 1 + n
    return out


def accepted_in(body: bytes) -> int:
    return sum(body.count(m) for m in ACCEPT_MARKERS)


def ensure_wrk() -> str | None:
    """Path of wrk; installs the Debian package when running as root without it (refreshing
    the package lists once if the first attempt fails). None: use the Python driver."""
    if os.environ.get("BENCH_NO_WRK"):
        return None
    found = shutil.which("wrk")
    if found or not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return found
    for step in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "wrk"]):  # fmt: skip
        if shutil.which("wrk"):
            break
        subprocess.run(step, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       timeout=APT_TIMEOUT_S)  # fmt: skip
    return shutil.which("wrk")


def run_closed(
    url: str, requests_file: Path, *, duration_s: float, connections: int, wrap: bool
) -> dict[str, Any]:
    """Closed loop with wrk when available, else with the Python driver. One JSON result:
    requests, accepted (transactions), statuses, duration_s, errors, driver."""
    wrk = ensure_wrk()
    if wrk is not None:
        env = dict(os.environ, BENCH_REQUESTS=str(requests_file), BENCH_WRAP="1" if wrap else "0")
        proc = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
             f"--timeout={WRK_TIMEOUT_S}", "-s", str(LUA_SCRIPT), url],
            capture_output=True, text=True, env=env, check=False, timeout=duration_s + 120,
        )  # fmt: skip
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                result = json.loads(line)
                result["driver"] = "wrk"
                return result
        raise RuntimeError(f"wrk gave no result: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return run_python_closed(
        url, requests_file, duration_s=duration_s, connections=connections, wrap=wrap
    )


def run_python_closed(
    url: str, requests_file: Path, *, duration_s: float, connections: int, wrap: bool = False
) -> dict[str, Any]:
    """Closed loop from Python: stops at `duration_s`, or when the requests run out unless
    `wrap` (then they are sent again from the first)."""
    args = [sys.executable, "-m", "bench.load", "closed", url, str(requests_file),
            "--duration", str(duration_s), "--connections", str(connections)]  # fmt: skip
    if wrap:
        args.append("--wrap")
    return _python_driver(args, duration_s)


def run_open(
    url: str, requests_file: Path, *, rate_per_s: float, duration_s: float, connections_max: int
) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.load", "open", url, str(requests_file),
            "--rate", str(rate_per_s), "--duration", str(duration_s),
            "--connections", str(connections_max)]  # fmt: skip
    return _python_driver(args, duration_s)


def _python_driver(args: list[str], duration_s: float) -> dict[str, Any]:
    proc = subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=duration_s + 120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load driver failed: {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- the Python driver -------------------------------------------------------------------------


# What an exchange ends with: the status and body of the answer, or why there is none.
_Outcome = tuple[int, bytes] | Exception


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: send a request, read one Content-Length answer.

    A protocol rather than asyncio streams, and callbacks rather than a task per request in
    the open loop: the driver shares the machine with the server it measures."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.on_answer: Callable[[_Outcome], None] | None = None
        self.head: tuple[int, int, int] | None = None  # status, header end, body length

    @classmethod
    async def open(cls, host: str, port: int) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(cls, host, port), CONNECT_TIMEOUT_S)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.on_answer is None:
            return
        try:
            answer = self._answer()
        except ValueError as exc:
            self._end(exc)
            return
        if answer is not None:
            self._end(answer)

    def _end(self, outcome: _Outcome) -> None:
        on_answer, self.on_answer = self.on_answer, None
        if on_answer is not None:
            on_answer(outcome)

    def _answer(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HEADER_BYTES_MAX:
                    raise ValueError("response header too large")
                return None
            head = bytes(buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length > BODY_BYTES_MAX:
                raise ValueError("response body too large")
            self.head = (int(head[9:12]), end + 4, length)
        status, start, length = self.head
        if len(buf) < start + length:
            return None
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        self.head = None
        return status, body

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(ConnectionResetError("connection closed by the server"))

    def send(self, request: bytes, on_answer: Callable[[_Outcome], None]) -> None:
        """Send `request`; `on_answer` gets the answer, or the error that ended the exchange."""
        assert self.transport is not None and self.on_answer is None
        if self.transport.is_closing():
            on_answer(ConnectionResetError("connection closed by the server"))
            return
        self.on_answer = on_answer
        self.transport.write(request)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        answered: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        def settle(outcome: _Outcome) -> None:
            if answered.done():
                return
            if isinstance(outcome, Exception):
                answered.set_exception(outcome)
            else:
                answered.set_result(outcome)

        self.send(request, settle)
        return await answered

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.accepted = 0
        self.errors = 0
        self.latencies_us: list[int] = []

    def record(self, status: int, body: bytes, latency_s: float) -> None:
        self.statuses[status] += 1
        self.accepted += accepted_in(body)
        if len(self.latencies_us) < LATENCY_SAMPLES_MAX:
            self.latencies_us.append(int(latency_s * 1e6))


def _now() -> float:
    """Seconds on a fine clock: uvloop's `loop.time()` counts whole milliseconds."""
    return time.perf_counter()


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)


def _percentiles(lat_us: list[int]) -> dict[str, float]:
    if not lat_us:
        return {}
    s = sorted(lat_us)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] / 1000, 3)

    return {"p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": q(1.0)}


async def _closed(
    url: str, requests: list[bytes], duration_s: float, connections: int, wrap: bool
) -> dict[str, Any]:
    host, port = _host_port(url)
    tally = _Tally()
    conns = [await _Conn.open(host, port) for _ in range(connections)]
    state = {"next": 0}
    deadline = _now() + duration_s

    async def worker(c: _Conn) -> None:
        while _now() < deadline:
            i = state["next"]
            if i >= len(requests) and not wrap:
                return
            state["next"] = i + 1
            sent = _now()
            try:
                status, body = await c.exchange(requests[i % len(requests)])
            except (OSError, ValueError):
                tally.errors += 1
                return
            tally.record(status, body, _now() - sent)

    started = _now()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = _now() - started
    for c in conns:
        c.close()
    return {"requests": sum(tally.statuses.values()), "accepted": tally.accepted,
            "statuses": {str(k): v for k, v in tally.statuses.items()}, "errors": tally.errors,
            "duration_s": round(elapsed, 3), **_percentiles(tally.latencies_us),
            "driver": "python"}  # fmt: skip


async def _open(
    url: str, requests: list[bytes], rate: float, duration_s: float, connections_max: int
) -> dict[str, Any]:
    host, port = _host_port(url)
    tally, loop = _Tally(), asyncio.get_running_loop()
    n = min(len(requests), int(rate * duration_s))
    waiting: deque[tuple[float, bytes]] = deque()  # due, not sent: every connection was busy
    idle: list[_Conn] = [await _Conn.open(host, port) for _ in range(min(32, connections_max))]
    opened, late_sends, sent, ended = len(idle), 0, 0, 0
    all_ended = loop.create_future()

    def start(due: float, request: bytes) -> None:
        nonlocal sent
        sent += 1
        c = idle.pop()
        c.send(request, lambda outcome: end(c, due, outcome))

    def end(c: _Conn, due: float, outcome: _Outcome) -> None:
        nonlocal ended
        ended += 1
        if isinstance(outcome, Exception):
            tally.errors += 1
            tally.record(0, b"", _now() - due)
            c.close()
            task = loop.create_task(replace())
            replacing.add(task)
            task.add_done_callback(replacing.discard)
        else:
            tally.record(outcome[0], outcome[1], _now() - due)
            idle.append(c)
            if waiting:
                start(*waiting.popleft())
        settle()

    async def replace() -> None:
        """A connection the server closed is replaced; without any, what waits fails."""
        nonlocal ended
        try:
            idle.append(await _Conn.open(host, port))
        except OSError:
            if sent == ended and not idle:
                while waiting:
                    ended += 1
                    tally.errors += 1
                    tally.record(0, b"", _now() - waiting.popleft()[0])
                settle()
            return
        while idle and waiting:
            start(*waiting.popleft())

    def settle() -> None:
        if ended == n and not all_ended.done():
            all_ended.set_result(None)

    replacing: set[asyncio.Task[None]] = set()
    start_t = _now() + 0.05
    for i in range(n):
        due = start_t + i / rate
        wait = due - _now()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.002:
            late_sends += 1
        if not idle and opened < connections_max:
            idle.append(await _Conn.open(host, port))
            opened += 1
        waiting.append((due, requests[i]))
        while idle and waiting:
            start(*waiting.popleft())
    if n:
        await all_ended
    elapsed = _now() - start_t
    for c in idle:
        c.close()
    return {"requests": sum(tally.statuses.values()), "accepted": tally.accepted,
            "statuses": {str(k): v for k, v in tally.statuses.items()}, "errors": tally.errors,
            "duration_s": round(elapsed, 3), "rate_per_s": rate, "connections": opened,
            "late_sends": late_sends, **_percentiles(tally.latencies_us), "driver": "python"}  # fmt: skip


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.load")
    ap.add_argument("mode", choices=("open", "closed"))
    ap.add_argument("url")
    ap.add_argument("requests_file")
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrap", action="store_true")
    a = ap.parse_args(argv)
    requests = read_requests(Path(a.requests_file))
    started, cpu_started = time.perf_counter(), time.process_time()
    if a.mode == "open":
        result = eventloop.run(_open(a.url, requests, a.rate, a.duration, a.connections))
    else:
        result = eventloop.run(_closed(a.url, requests, a.duration, a.connections, a.wrap))
    result["wall_s"] = round(time.perf_counter() - started, 3)
    result["driver_cpu_s"] = round(time.process_time() - cpu_started, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
