"""Cost of request signatures per request, side by side with the bare Ed25519 operations.

Figures (medians over rounds of `REQUESTS_PER_ROUND` distinct requests, microseconds per
request): `auth_verify_us` for Verifier.verify (parse, freshness, replay memory, digest,
signature), `auth_sign_us` for sign_request, `ed25519_verify_us` / `ed25519_sign_us` for OpenSSL's
Ed25519 through cryptography alone, and `libsodium_verify_us` / `libsodium_sign_us` for
libsodium's (gateway.ed25519, what Verifier and sign_request use), so the framing overhead is
the difference.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from gateway import ed25519
from gateway.auth import StaticKeyResolver, Verifier, generate_private_key, sign_request

ROUNDS = 7
REQUESTS_PER_ROUND = 500
BODY = b'{"msg_id":"M%06d","amount":"1250.00","currency":"HKD","creditor":"+852-91234567"}'


def _per_request_us(seconds: float) -> float:
    return seconds / REQUESTS_PER_ROUND * 1e6


async def _verify_all(
    verifier: Verifier, signed: list[dict[str, str]], bodies: list[bytes]
) -> None:
    for headers, body in zip(signed, bodies, strict=True):
        await verifier.verify("POST", "/v1/transfers", headers, body)


def run() -> dict[str, float | int]:
    key = generate_private_key()
    public = key.public_key()
    clock_now = 1_800_000_000.0
    sign_us, verify_us, raw_sign_us, raw_verify_us = [], [], [], []
    na_sign_us: list[float] = []
    na_verify_us: list[float] = []
    for r in range(ROUNDS):
        bodies = [BODY % (r * REQUESTS_PER_ROUND + i) for i in range(REQUESTS_PER_ROUND)]
        started = time.perf_counter()
        signed = [
            sign_request(
                "POST",
                "/v1/transfers",
                {"Content-Type": "application/json"},
                b,
                "bank-a",
                key,
                clock_now,
            )
            for b in bodies
        ]
        sign_us.append(_per_request_us(time.perf_counter() - started))

        verifier = Verifier(StaticKeyResolver({"bank-a": public}), clock=lambda: clock_now)

        started = time.perf_counter()
        asyncio.run(_verify_all(verifier, signed, bodies))
        verify_us.append(_per_request_us(time.perf_counter() - started))

        started = time.perf_counter()
        sigs = [key.sign(b) for b in bodies]
        raw_sign_us.append(_per_request_us(time.perf_counter() - started))
        started = time.perf_counter()
        for s, b in zip(sigs, bodies, strict=True):
            public.verify(s, b)
        raw_verify_us.append(_per_request_us(time.perf_counter() - started))
        started = time.perf_counter()
        sigs = [ed25519.sign(key, b) for b in bodies]
        na_sign_us.append(_per_request_us(time.perf_counter() - started))
        started = time.perf_counter()
        if not all(ed25519.verify(public, s, b) for s, b in zip(sigs, bodies, strict=True)):
            raise AssertionError("libsodium refused a signature it made")
        na_verify_us.append(_per_request_us(time.perf_counter() - started))
    return {
        "auth_verify_us": round(statistics.median(verify_us), 1),
        "auth_sign_us": round(statistics.median(sign_us), 1),
        "ed25519_verify_us": round(statistics.median(raw_verify_us), 1),
        "ed25519_sign_us": round(statistics.median(raw_sign_us), 1),
        "libsodium_verify_us": round(statistics.median(na_verify_us), 1),
        "libsodium_sign_us": round(statistics.median(na_sign_us), 1),
    }


if __name__ == "__main__":
    print(run())
