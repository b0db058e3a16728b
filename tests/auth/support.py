"""Shared helpers for the authentication tests: a settable clock, a signed-request factory."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.auth import AuthError, StaticKeyResolver, Verifier, generate_private_key, sign_request

T = TypeVar("T")
NOW = 1_800_000_000.0  # a fixed instant: no test reads the wall clock


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Participant:
    id: str
    key: Ed25519PrivateKey = field(default_factory=generate_private_key)


@dataclass
class Request:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes

    def verify_with(self, verifier: Verifier) -> str:
        return run(verifier.verify(self.method, self.path_qs, self.headers, self.body))


def signed(
    who: Participant,
    method: str = "POST",
    path_qs: str = "/v1/transfers",
    body: bytes = b'{"amount":"10.00"}',
    headers: dict[str, str] | None = None,
    created: float = NOW,
) -> Request:
    hdrs = {"Content-Type": "application/json"} if headers is None else headers
    return Request(
        method, path_qs, sign_request(method, path_qs, hdrs, body, who.id, who.key, created), body
    )


def verifier_for(*who: Participant, clock: Clock | None = None, **kwargs: Any) -> Verifier:
    resolver = StaticKeyResolver({p.id: p.key.public_key() for p in who})
    return Verifier(resolver, clock=clock or Clock(), **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def refusal(verifier: Verifier, req: Request) -> AuthError:
    """The AuthError the verifier raises for `req`; fails the test if it accepts it."""
    try:
        who = req.verify_with(verifier)
    except AuthError as exc:
        return exc
    raise AssertionError(f"request accepted as {who!r}, expected a refusal")


def kind(err: AuthError) -> str:
    return err.problem_type.rsplit(":", 1)[1]
