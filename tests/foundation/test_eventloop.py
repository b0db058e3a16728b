"""The event loop of the long-running processes (gateway/eventloop.py): uvloop by default,
asyncio's own on request; an HTTP exchange works the same on both."""

from __future__ import annotations

import asyncio

import pydantic
import pytest
from aiohttp import ClientSession, web

from gateway import eventloop
from gateway.config import Settings


async def _exchange() -> tuple[str, str]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession() as s, s.post(f"http://127.0.0.1:{port}/echo", data=b"pacs") as r:
            body = await r.text()
    finally:
        await runner.cleanup()
    return type(asyncio.get_running_loop()).__module__, body


@pytest.mark.parametrize(("kind", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")])
def test_the_chosen_loop_runs_an_http_exchange(kind: eventloop.EventLoopKind, module: str) -> None:
    assert eventloop.run(_exchange(), kind) == (module, "pacs")


def test_uvloop_is_the_default_and_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().event_loop == "uvloop"
    monkeypatch.setenv("BAYGATE_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("BAYGATE_EVENT_LOOP", "trio")
    with pytest.raises(pydantic.ValidationError):
        Settings()
