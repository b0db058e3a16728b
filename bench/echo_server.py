"""A bare aiohttp JSON echo server: the yardstick the gateway's throughput is compared with.

POST any path: the JSON body is parsed and sent back as JSON. Nothing else: no middleware,
no signature, no database. It runs on the gateway's default event loop (gateway/eventloop.py),
so that the ratio compares the gateway's own work and not two loops.
`python -m bench.echo_server PORT` serves on 127.0.0.1 and prints one line, "ready <port>",
once listening; it runs until SIGTERM or SIGINT.
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


async def _serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {runner.addresses[0][1]}", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    eventloop.run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0), eventloop.DEFAULT)
