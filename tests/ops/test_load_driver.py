"""The benchmark's Python load driver (bench/load.py) counts what a server answered.

A real aiohttp server, in a thread of its own, answers each request by what its path asks:
an accepted pacs.002, an ibps.102 receipt, a refusal, a body larger than one read, or a
closed connection. The driver runs as the benchmark runs it, in a process of its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bench import load

BIG_BYTES = 300_000  # answered in many reads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _answer(request: web.Request) -> web.StreamResponse:
    await request.read()
    kind = request.match_info["kind"]
    if kind == "acsp":
        return web.Response(body=b"<TxSts>ACSP</TxSts><TxSts>ACSP</TxSts>")
    if kind == "pr03":
        return web.Response(body=b"<PrcSts>PR03</PrcSts>")
    if kind == "big":
        return web.Response(body=b"x" * BIG_BYTES + b">ACSP<")
    if kind == "close":
        assert request.transport is not None
        request.transport.close()
        return web.Response(body=b"")
    return web.Response(status=401, body=b"no")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/{kind}", _answer)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def _requests(tmp_path: Path, url: str, kinds: list[str]) -> Path:
    host, port = url.split("//")[1].split(":")
    reqs = [load.raw_request(host, int(port), "POST", f"/{k}", {}, b"<Document/>") for k in kinds]
    path = tmp_path / "requests"
    load.write_requests(path, reqs)
    return path


def test_closed_loop_counts_accepted_transactions_and_statuses(server: str, tmp_path: Path) -> None:
    kinds = ["acsp"] * 30 + ["pr03"] * 20 + ["refused"] * 10 + ["big"] * 5
    path = _requests(tmp_path, server, kinds)
    res = load.run_python_closed(server, path, duration_s=30, connections=8)
    assert res["requests"] == len(kinds)
    assert res["statuses"] == {"200": 55, "401": 10}
    assert res["accepted"] == 30 * 2 + 20 + 5
    assert res["errors"] == 0
    assert 0 < res["driver_cpu_s"] < res["wall_s"] + 1


def test_open_loop_sends_each_request_once_and_measures_from_its_due_time(
    server: str, tmp_path: Path
) -> None:
    path = _requests(tmp_path, server, ["acsp"] * 300)
    res = load.run_open(server, path, rate_per_s=1000.0, duration_s=0.3, connections_max=16)
    assert res["requests"] == 300
    assert res["accepted"] == 600
    assert res["p50_ms"] <= res["p99_ms"] <= res["max_ms"]
    # Latency is read from a fine clock, not the event loop's (whole milliseconds on uvloop:
    # with requests due whole milliseconds apart, every latency would be whole too).
    quantiles = [res[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
    assert any(abs(q - round(q)) > 0.002 for q in quantiles), quantiles
    # 300 requests due over 0.3 s: the run cannot end before the last is due.
    assert res["duration_s"] >= 0.29


def test_a_connection_closed_by_the_server_is_an_error_not_a_hang(
    server: str, tmp_path: Path
) -> None:
    path = _requests(tmp_path, server, ["acsp"] * 4 + ["close"] + ["acsp"] * 4)
    res = load.run_python_closed(server, path, duration_s=30, connections=1)
    assert res["errors"] == 1
    # The one connection's worker stops at the error: the requests after it are not sent.
    assert res["requests"] == 4 and res["accepted"] == 8


def test_the_open_loop_replaces_a_connection_the_server_closed(server: str, tmp_path: Path) -> None:
    kinds = ["acsp"] * 20 + ["close"] * 3 + ["acsp"] * 20
    path = _requests(tmp_path, server, kinds)
    res = load.run_open(server, path, rate_per_s=200.0, duration_s=len(kinds) / 200, connections_max=2)
    assert res["errors"] == 3
    assert res["accepted"] == 40 * 2  # every request after the closes was still answered
