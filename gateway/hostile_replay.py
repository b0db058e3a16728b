"""Send a hostile corpus (gateway.hostile) to a running gateway and judge every answer.

`replay` signs each case at send time as its `auth` mode says (a fresh signature, a stale
one, another participant's key, a tampered body, ...), sends it over HTTP with bounded
concurrency, and records the status and up to `answer_bytes_max` of the answer. Raw cases
are written to a socket as they are, since no HTTP client would send them.

`violations(answer)` lists what is wrong with one answer: no answer at all, a 5xx, a status
other than the one the case requires, an outcome class the case does not allow (a 2xx must
be a status report or JSON answer whose every transaction is RJCT with a reason, unless the
case's content is legitimate), a native rejection that does not read as RJCT with a reason,
or a canary of the hostile content echoed back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from adapters.registry import get_adapter
from clearing.model import SCHEMES, TxStatus
from gateway import hostile as h
from gateway.auth import sign_request

ANSWER_BYTES_MAX = 16 * 1024 * 1024  # a status report for 10,000 transactions is a few MB
STREAM_CHUNK_BYTES = 1024 * 1024
RAW_READ_BYTES_MAX = 64 * 1024
SKEW_S = 3600
UNKNOWN_KEY_ID = "zz-unregistered"


@dataclass(frozen=True, slots=True)
class Answer:
    case: h.Case
    status: int | None  # None: no HTTP answer (see `error`)
    body: bytes
    content_type: str = ""
    error: str | None = None
    first_status: int | None = None  # REPLAYED: the answer to the first send
    seconds: float = 0.0


def _scheme_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v1", "schemes"] and parts[4] == "messages":
        return parts[3] if parts[3] in SCHEMES else None
    return None


def _native_reports(scheme: str, body: bytes) -> list[Any] | None:
    try:
        return list(get_adapter(scheme).decode_status_reply(body))
    except Exception:  # any failure to read it means it is not a status report
        return None


def classify(a: Answer) -> str | None:
    """The outcome class of an answer (hostile.REFUSED / REJECTED / ACCEPTED), None if none fits."""
    s = a.status
    if s is None or s >= 500 or s < 200 or 300 <= s < 400:
        return None
    if s >= 400:
        return h.REFUSED
    scheme = _scheme_of(a.case.path)
    if scheme is not None and a.case.method == "POST":
        reports = _native_reports(scheme, a.body)
        if not reports:
            return None
        refused = all(r.status == TxStatus.RJCT and r.reason for r in reports)
        return h.REJECTED if refused else h.ACCEPTED
    if a.case.path == "/v1/transfers" and a.case.method == "POST":
        try:
            out = json.loads(a.body)
        except ValueError:
            return None
        return h.REJECTED if out.get("status") == "RJCT" and out.get("reason") else h.ACCEPTED
    return h.ACCEPTED


def violations(a: Answer) -> list[str]:
    """What is wrong with this answer; empty when it is one the case allows."""
    c = a.case
    if a.status is None:
        return [f"no answer: {a.error}"]
    found = []
    if a.status >= 500 or (a.first_status is not None and a.first_status >= 500):
        found.append(f"server error {a.first_status if a.status < 500 else a.status}")
    if c.status is not None and a.status != c.status:
        found.append(f"status {a.status}, expected {c.status}")
    outcome = classify(a)
    if outcome not in c.expect:
        found.append(f"outcome {outcome} not in {sorted(c.expect)}")
    scheme = _scheme_of(c.path)
    if scheme is not None and a.status == 400 and "xml" in a.content_type:
        reports = _native_reports(scheme, a.body)
        if not reports or not all(r.status == TxStatus.RJCT and r.reason for r in reports):
            found.append("a native rejection without RJCT and a reason")
    lowered = a.body.lower()
    found += [f"echoed {x!r}" for x in c.canaries if x.lower() in lowered]
    return found


def _sign(
    c: h.Case, base_url: str, body: bytes, keys: Mapping[str, Ed25519PrivateKey], now: float,
    operator_token: str,
) -> tuple[str, bytes, dict[str, str]]:  # fmt: skip
    """(path to send, body to send, headers) for the case's authentication mode."""
    headers = {"Content-Type": c.content_type} if c.content_type else {}
    path, auth = c.path, c.auth
    if auth in (h.UNSIGNED, h.RAW):
        pass
    elif auth == h.OPERATOR:
        headers["Authorization"] = f"Bearer {operator_token}"
    elif auth == h.BAD_TOKEN:
        headers["Authorization"] = "Bearer " + base64.urlsafe_b64encode(os.urandom(32)).decode()
    else:
        assert c.signer is not None
        key_id, key = c.signer, keys[c.signer]
        created = now - SKEW_S if auth == h.STALE else now + SKEW_S if auth == h.FUTURE else now
        if auth == h.WRONG_KEY:
            key = keys[c.alt_signer or c.signer]
        elif auth == h.UNKNOWN_KEY:
            key_id, key = UNKNOWN_KEY_ID, Ed25519PrivateKey.generate()
        signed_path = path.replace("/v1/", "/v1/x/", 1) if auth == h.TAMPERED_PATH else path
        to_sign = dict(headers)
        if auth == h.UNCOVERED_TYPE:
            to_sign.pop("Content-Type", None)
        signed = sign_request(
            c.method, base_url + signed_path, to_sign, body, key_id, key, created=created
        )
        headers.update(signed)
        if auth == h.TAMPERED_BODY:
            body = body[:-1] + bytes([body[-1] ^ 0x01])
        elif auth == h.GARBAGE:
            headers["Signature"] = "sig1=:" + base64.b64encode(os.urandom(64)).decode() + ":"
        elif auth == h.BAD_ALG:
            headers["Signature-Input"] += ';alg="rsa-pss-sha512"'
    for name, value in c.headers:
        if value:
            headers[name] = value
        else:
            headers.pop(name, None)
    return path, body, headers


async def _stream(prefix: bytes, filler_bytes: int) -> AsyncIterator[bytes]:
    yield prefix
    chunk = b" " * STREAM_CHUNK_BYTES
    left = filler_bytes
    while left > 0:
        yield chunk[: min(left, STREAM_CHUNK_BYTES)]
        left -= STREAM_CHUNK_BYTES


async def _send_http(
    session: aiohttp.ClientSession, c: h.Case, base_url: str, path: str, body: bytes,
    headers: dict[str, str], answer_bytes_max: int,
) -> tuple[int, bytes, str]:  # fmt: skip
    data: Any = body if body else None
    if c.stream_bytes:
        data = _stream(body, c.stream_bytes)
        if not c.chunked:
            headers["Content-Length"] = str(c.size_bytes)
    async with session.request(c.method, URL(base_url + path, encoded=True), data=data,
                               headers=headers) as resp:  # fmt: skip
        got = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            if len(got) < answer_bytes_max:
                got += chunk[: answer_bytes_max - len(got)]
        return resp.status, bytes(got), resp.headers.get("Content-Type", "")


async def _send_raw(base_url: str, request: bytes, timeout_s: float) -> tuple[int, bytes, str]:
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        got = b""
        async with asyncio.timeout(timeout_s):
            while b"\r\n\r\n" not in got and len(got) < RAW_READ_BYTES_MAX:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                got += chunk
    finally:
        writer.close()
    line = got.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[1].isdigit():
        raise ConnectionError(f"no HTTP status line in {got[:80]!r}")
    return int(line[1]), got.partition(b"\r\n\r\n")[2], ""


async def replay_one(
    session: aiohttp.ClientSession,
    c: h.Case,
    base_url: str,
    keys: Mapping[str, Ed25519PrivateKey],
    *,
    operator_token: str = "",
    clock: Callable[[], float] = time.time,
    timeout_s: float = 60.0,
    answer_bytes_max: int = ANSWER_BYTES_MAX,
) -> Answer:
    started = time.perf_counter()
    first: int | None = None
    try:
        async with asyncio.timeout(timeout_s):
            if c.auth == h.RAW:
                status, body, ctype = await _send_raw(base_url, c.body, timeout_s)
            else:
                path, payload, headers = _sign(c, base_url, c.body, keys, clock(), operator_token)
                if c.auth == h.REPLAYED:
                    first = (await _send_http(session, c, base_url, path, payload, dict(headers),
                                              answer_bytes_max))[0]  # fmt: skip
                status, body, ctype = await _send_http(session, c, base_url, path, payload, headers,
                                                       answer_bytes_max)  # fmt: skip
    except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
        return Answer(c, None, b"", error=f"{type(exc).__name__}: {exc}"[:300],
                      seconds=time.perf_counter() - started)  # fmt: skip
    return Answer(c, status, body, ctype, None, first, time.perf_counter() - started)


async def replay(
    base_url: str,
    cases: Sequence[h.Case],
    keys: Mapping[str, Ed25519PrivateKey],
    *,
    operator_token: str = "",
    concurrency: int = 8,
    timeout_s: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> list[Answer]:
    """Send every case (at most `concurrency` at a time) and return the answers in case order."""
    if not 1 <= concurrency <= 256:
        raise ValueError("concurrency must lie in [1, 256]")
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                     skip_auto_headers=("Content-Type",)) as session:  # fmt: skip

        async def one(c: h.Case) -> Answer:
            async with gate:
                return await replay_one(session, c, base_url, keys, operator_token=operator_token,
                                        clock=clock, timeout_s=timeout_s)  # fmt: skip

        return list(await asyncio.gather(*(one(c) for c in cases)))


def summary(answers: Sequence[Answer]) -> dict[str, Any]:
    """Counts for a report: cases, statuses, outcomes per kind, and every violation found."""
    statuses = Counter(str(a.status) for a in answers)
    outcomes: dict[str, Counter[str]] = {}
    bad = []
    for a in answers:
        outcomes.setdefault(a.case.kind, Counter())[str(classify(a))] += 1
        for v in violations(a):
            bad.append(f"#{a.case.n} {a.case.kind} {a.case.method} {a.case.path[:60]}: {v}")
    return {
        "cases": len(answers),
        "bytes_sent": sum(a.case.size_bytes for a in answers),
        "statuses": dict(sorted(statuses.items())),
        "outcomes": {k: dict(v) for k, v in sorted(outcomes.items())},
        "violations": bad,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m gateway.hostile_replay --base-url URL`: build a corpus for a directory file,
    replay it against a running gateway with the participants' keys, print the summary."""
    import argparse
    from pathlib import Path

    from gateway import directory as dirmod
    from gateway.harness import DEMO_KEYS, SAMPLE_DIRECTORY
    from gateway.sim_messages import load_keys

    ap = argparse.ArgumentParser(prog="python -m gateway.hostile_replay", description=main.__doc__)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--directory", type=Path, default=SAMPLE_DIRECTORY)
    ap.add_argument("--keys", type=Path, default=DEMO_KEYS, help="folder of <participant>.pem")
    ap.add_argument("--operator-token", default="")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--count", type=int, default=1_000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args(argv)
    d = dirmod.load_file(args.directory)
    keys = load_keys(args.keys, [p.id for p in d.participants])
    cases = h.build_corpus(d, seed=args.seed, count=args.count)
    answers = asyncio.run(replay(args.base_url, cases, keys, operator_token=args.operator_token,
                                 concurrency=args.concurrency))  # fmt: skip
    report = summary(answers)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
