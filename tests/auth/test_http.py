"""Signed requests over real HTTP: the client against an aiohttp app whose middleware verifies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.auth import AuthError, Verifier
from gateway.client import BaygateClient, ResponseTooLarge

from .support import Clock, Participant, verifier_for

BANK_A = Participant("bank-a")
BANK_B = Participant("bank-b")
PARTICIPANT = web.RequestKey("participant", str)
CLOCK = Clock()


def make_app(verifier: Verifier) -> web.Application:
    @web.middleware
    async def authenticate(request: web.Request, handler):  # type: ignore[no-untyped-def]
        body = await request.read()
        try:
            who = await verifier.verify(request.method, request.raw_path, request.headers, body)
        except AuthError as exc:
            return web.json_response(
                exc.problem(),
                status=exc.status,
                content_type="application/problem+json",
                headers=exc.headers(),
            )
        request[PARTICIPANT] = who
        return await handler(request)

    async def message(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "participant": request[PARTICIPANT],
                "scheme": request.match_info["scheme"],
                "size_bytes": len(body),
                "content_type": request.headers["Content-Type"],
            }
        )

    async def transfers(request: web.Request) -> web.Response:
        return web.json_response(
            {"participant": request[PARTICIPANT], "echo": await request.json()}, status=201
        )

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response(
            {"participant": request[PARTICIPANT], "query": dict(request.query)}
        )

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100_000, content_type="application/octet-stream")

    app = web.Application(middlewares=[authenticate])
    app.router.add_post("/v1/schemes/{scheme}/messages", message)
    app.router.add_post("/v1/transfers", transfers)
    app.router.add_get("/v1/whoami", whoami)
    app.router.add_get("/v1/big", big)
    return app


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    # One clock for the verifier and the clients (see _client), so no test reads the wall clock.
    srv = TestServer(make_app(verifier_for(BANK_A, BANK_B, clock=CLOCK)))
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


def _base(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def _client(server: TestServer, who: Participant, **kwargs: object) -> BaygateClient:
    kwargs.setdefault("clock", CLOCK)
    return BaygateClient(_base(server), who.id, who.key, **kwargs)  # type: ignore[arg-type]


async def test_the_client_is_accepted_as_its_participant(server: TestServer) -> None:
    async with _client(server, BANK_A) as a, _client(server, BANK_B) as b:
        created = await a.post_json("/v1/transfers", {"amount": "10.00", "name": "陳大文"})
        assert created.status == 201
        assert created.body == {
            "participant": "bank-a",
            "echo": {"amount": "10.00", "name": "陳大文"},
        }

        who = await b.get_json("/v1/whoami?proxy=%2B852-91234567&x=1")
        assert who.status == 200
        assert who.body == {"participant": "bank-b", "query": {"proxy": "+852-91234567", "x": "1"}}

        payload = b"{H:01...}\r\n<Document>\xe4\xb8\xad</Document>"
        msg = await a.post_message("cn-ibps", payload)
        assert msg.status == 200
        assert isinstance(msg.body, bytes)
        assert json.loads(msg.body) == {
            "participant": "bank-a",
            "scheme": "cn-ibps",
            "size_bytes": len(payload),
            "content_type": "application/xml",
        }


async def test_an_unsigned_request_gets_a_problem_document(server: TestServer) -> None:
    async with aiohttp.ClientSession() as raw:
        async with raw.post(server.make_url("/v1/transfers"), json={"amount": "1.00"}) as resp:
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"
            problem = await resp.json(content_type=None)
    assert problem["type"] == "urn:baygate:problem:signature-missing"
    assert problem["status"] == 401


async def test_a_captured_request_sent_again_is_refused(server: TestServer) -> None:
    client = _client(server, BANK_A)
    body = b'{"amount":"5.00"}'
    url, headers = client.signed_headers(
        "POST", "/v1/transfers", body, {"Content-Type": "application/json"}
    )
    statuses, problems = [], []
    async with aiohttp.ClientSession() as raw:
        for _ in range(2):
            async with raw.post(URL(url, encoded=True), data=body, headers=headers) as resp:
                statuses.append(resp.status)
                problems.append(await resp.json(content_type=None))
    assert statuses == [201, 401]
    assert problems[1]["type"] == "urn:baygate:problem:signature-replayed"


async def test_a_body_changed_in_transit_is_refused(server: TestServer) -> None:
    client = _client(server, BANK_A)
    url, headers = client.signed_headers(
        "POST", "/v1/transfers", b'{"amount":"5.00"}', {"Content-Type": "application/json"}
    )
    async with aiohttp.ClientSession() as raw:
        async with raw.post(
            URL(url, encoded=True), data=b'{"amount":"500.00"}', headers=headers
        ) as resp:
            assert resp.status == 401
            problem = await resp.json(content_type=None)
    assert problem["type"] == "urn:baygate:problem:content-digest-mismatch"


async def test_a_key_of_another_participant_is_refused_over_http(server: TestServer) -> None:
    async with _client(server, Participant("bank-a", BANK_B.key)) as impostor:
        reply = await impostor.post_json("/v1/transfers", {"amount": "1.00"})
    assert reply.status == 401
    assert reply.body["type"] == "urn:baygate:problem:signature-invalid"


async def test_a_borrowed_session_stays_open_and_replies_are_bounded(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = _client(server, BANK_A, session=session, response_bytes_max=10_000)
        with pytest.raises(ResponseTooLarge):
            await client.request("GET", "/v1/big")
        await client.close()
        assert not session.closed
        reply = await client.get_json("/v1/whoami")
        assert reply.status == 200 and reply.body["participant"] == "bank-a"


async def test_a_503_from_a_full_replay_memory_carries_retry_after() -> None:
    clock = Clock()
    srv = TestServer(make_app(verifier_for(BANK_A, clock=clock, replay_cache_max=1)))
    await srv.start_server()
    try:
        async with _client(srv, BANK_A, clock=clock) as client:
            first = await client.get_json("/v1/whoami?n=1")
            second = await client.get_json("/v1/whoami?n=2")
    finally:
        await srv.close()
    assert first.status == 200
    assert second.status == 503
    assert second.headers["Retry-After"] == "1"
