"""The event loop of the long-running processes (gateway/eventloop.py): uvloop by default,
asyncio's own on request; an HTTP exchange works the same on both."""

from __future__ import annotations

import asyncio

import pydantic
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from gateway import eventloop
from gateway.config import Settings


async def _exchange() -> tuple[str, str]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/echo", echo)
    async with TestServer(app) as server, ClientSession() as s:
        async with s.post(server.make_url("/echo"), data=b"pacs") as r:
            body = await r.text()
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
