"""A bare aiohttp JSON echo server: the yardstick the gateway's throughput is compared with.

POST any path: the JSON body is parsed and sent back as JSON. Nothing else: no middleware,
no signature, no database. It runs on the gateway's default event loop (gateway/eventloop.py),
so that the ratio compares the gateway's own work and not two loops.
`python -m bench.echo_server PORT [--reuse-port]` serves on 127.0.0.1 (with `--reuse-port`,
sharing PORT with other processes, as the gateway's processes do) and prints one line,
"ready <port>", once listening; it runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from aiohttp import web

from gateway import eventloop


async def echo(request: web.Request) -> web.Response:
    return web.json_response(json.loads(await request.read()))


async def _serve(port: int, reuse_port: bool) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {runner.addresses[0][1]}", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    args = sys.argv[1:]
    port = int(args[0]) if args and args[0].isdigit() else 0
    eventloop.run(_serve(port, "--reuse-port" in args), eventloop.DEFAULT)
