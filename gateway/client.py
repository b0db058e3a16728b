"""A small signed HTTP client for Baygate, used by participants, simulators and tests.

Every request is signed with the participant's Ed25519 key (gateway.auth.sign_request):
the URL is passed to aiohttp already encoded, so the path and query the gateway receives
are exactly those signed, and Content-Type is set before signing so that aiohttp adds
nothing the signature does not cover. Replies are read up to `response_bytes_max`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, NamedTuple

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from multidict import CIMultiDictProxy
from yarl import URL

from gateway.auth import sign_request

MESSAGES_PATH = "/v1/schemes/{scheme}/messages"
MESSAGE_CONTENT_TYPE = "application/xml"  # every scheme's messages, CNAPS2 envelope included


class ResponseTooLarge(aiohttp.ClientError):
    """The reply exceeded `response_bytes_max`; reading stopped there."""


class Reply(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # bytes for post_message/request, decoded JSON (or None) for *_json


class BaygateClient:
    """Signed requests to one Baygate gateway as one participant.

    `session` is borrowed when given (and not closed here); otherwise the client owns one,
    closed by `close()` or `async with`. `base_url` may carry a path prefix: it is signed
    as part of the path, so a proxy in front of the gateway must not strip it.
    """

    def __init__(
        self,
        base_url: str,
        participant_id: str,
        private_key: Ed25519PrivateKey,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout_s: float = 10.0,
        response_bytes_max: int = 4 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.participant_id = participant_id
        self._private_key = private_key
        self._session = session
        self._owns_session = session is None
        self.timeout_s = timeout_s
        self.response_bytes_max = response_bytes_max
        self._clock = clock

    async def __aenter__(self) -> BaygateClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    def signed_headers(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[str, dict[str, str]]:
        """The absolute URL and the signed headers for a request, without sending it."""
        url = self.base_url + path
        signed = sign_request(
            method, url, dict(headers or {}), body, self.participant_id, self._private_key,
            created=self._clock(),
        )  # fmt: skip
        return url, signed

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Send one signed request; `path` is encoded and starts with "/"."""
        headers = dict(headers or {})
        if body and not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/octet-stream"  # what aiohttp would add unsigned
        url, signed = self.signed_headers(method, path, body, headers)
        session = self._get_session()
        async with session.request(
            method,
            URL(url, encoded=True),
            data=body if body else None,
            headers=signed,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        ) as resp:
            data = await self._read_limited(resp)
            return Reply(resp.status, resp.headers, data)

    async def _read_limited(self, resp: aiohttp.ClientResponse) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > self.response_bytes_max:
            raise ResponseTooLarge(
                f"reply declares {declared} bytes, limit {self.response_bytes_max}"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.response_bytes_max:
                raise ResponseTooLarge(f"reply exceeds {self.response_bytes_max} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def post_message(
        self, scheme: str, body: bytes, content_type: str | None = None
    ) -> Reply:
        """Submit a scheme message (pacs.008, ibps.101, ...) as raw bytes: (status, headers, bytes)."""
        ctype = content_type or MESSAGE_CONTENT_TYPE
        path = MESSAGES_PATH.format(scheme=scheme)
        return await self.request("POST", path, body, {"Content-Type": ctype})

    async def post_json(self, path: str, obj: Any) -> Reply:
        """POST `obj` as JSON; the reply body is decoded JSON, or None when empty or not JSON."""
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        reply = await self.request("POST", path, body, {"Content-Type": "application/json"})
        return reply._replace(body=_json_or_none(reply))

    async def get_json(self, path: str) -> Reply:
        """GET `path`; the reply body is decoded JSON, or None when empty or not JSON."""
        reply = await self.request("GET", path, b"", {"Accept": "application/json"})
        return reply._replace(body=_json_or_none(reply))


def _json_or_none(reply: Reply) -> Any:
    ctype = reply.headers.get("Content-Type", "")
    if not reply.body or "json" not in ctype:
        return None
    return json.loads(reply.body)
