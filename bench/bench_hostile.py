"""Hostile input: how fast a running gateway refuses entity bombs, external entities, deep
nesting and oversized bodies, beside the cost of a valid one-transaction message.

Figures (medians over `ROUNDS` rounds; in each round every kind is sent once, in turn, on one
connection, to an in-process stack on an embedded PostgreSQL):
- hostile_valid_message_ms: a valid one-transaction pacs.008, signed, accepted (ACSP).
- hostile_xxe_refusal_ms, hostile_billion_laughs_refusal_ms, hostile_quadratic_refusal_ms:
  400 FF01 for a DOCTYPE (refused by a byte scan before any parsing).
- hostile_deep_nesting_refusal_ms: 100,000 nested elements, 400 FF01 from libxml2.
- hostile_near_limit_refusal_ms: about 3.9 MB of one transaction repeated, read and refused.
- hostile_oversized_refusal_ms: a 50 MB body, 413 once 4 MiB have been read.
- hostile_corpus_requests_per_s: the 1,000-case corpus (seed 7) replayed 8 at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from gateway import hostile
from gateway import hostile_replay as hr
from gateway import sim_messages as sm
from gateway.config import load_settings
from gateway.harness import running_stack

ROUNDS = 30
CORPUS_CASES = 1_000
KINDS = {
    "xxe": "xml.xxe-file",
    "billion_laughs": "xml.billion-laughs",
    "quadratic": "xml.quadratic-blowup",
    "oversized": "http.oversized",
}


def _pick(cases: list[hostile.Case], kind: str, **want: object) -> hostile.Case:
    return next(
        c for c in cases if c.kind == kind and all(getattr(c, k) == v for k, v in want.items())
    )


def _deep(case: hostile.Case) -> hostile.Case:
    depth = 100_000
    doc = b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">'
    doc += b"<a>" * depth + b"x" + b"</a>" * depth + b"</Document>"
    return hostile.Case(**{**{f: getattr(case, f) for f in case.__dataclass_fields__},
                           "kind": "bench.deep", "body": doc, "canaries": ()})  # fmt: skip


async def _measure() -> dict[str, float | int]:
    tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-hostile-"))
    settings = load_settings(data_dir=tmp, port=0, log_level="error")
    async with running_stack(settings) as stack:
        cases = hostile.build_corpus(stack.directory, seed=7, count=CORPUS_CASES, tag="B007")
        probes = {name: _pick(cases, kind) for name, kind in KINDS.items()}
        probes["xxe"] = _pick(cases, "xml.xxe-file", scheme="hk-fps")
        probes["deep_nesting"] = _deep(probes["xxe"])
        probes["near_limit"] = max(
            (c for c in cases if c.kind == "xml.many-transactions"), key=lambda c: c.size_bytes
        )
        sender = stack.participant("hk-801")
        payees = sm.payees_from_directory(stack.directory, random.Random(1))
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        times: dict[str, list[float]] = {name: [] for name in [*probes, "valid_message"]}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1),
                                         skip_auto_headers=("Content-Type",)) as session:  # fmt: skip
            for r in range(ROUNDS):
                body, _ = sm.build_message("hk-fps", sender, payees, 1, random.Random(r), tag="BV",
                                           seq=r * 10, created_at=now)  # fmt: skip
                valid = hostile.Case(n=r, kind="bench.valid", scheme="hk-fps", method="POST",
                                     path="/v1/schemes/hk-fps/messages", body=body, content_type=hostile.XML,
                                     auth=hostile.SIGNED, signer="hk-801", expect=frozenset({hostile.ACCEPTED}))  # fmt: skip
                for name, case in [("valid_message", valid), *probes.items()]:
                    answer = await hr.replay_one(session, case, stack.base_url, stack.keys)
                    assert not hr.violations(answer), (name, hr.violations(answer))
                    times[name].append(answer.seconds)
        started = time.perf_counter()
        answers = await hr.replay(
            stack.base_url, cases, stack.keys, operator_token=stack.operator_token
        )
        corpus_s = time.perf_counter() - started
    out: dict[str, float | int] = {
        f"hostile_{name}_{'ms' if name == 'valid_message' else 'refusal_ms'}": round(statistics.median(t) * 1000, 2)
        for name, t in times.items()
    }  # fmt: skip
    out["hostile_corpus_requests_per_s"] = round(len(answers) / corpus_s, 1)
    out["hostile_corpus_violations"] = sum(1 for a in answers if hr.violations(a))
    return out


def run() -> dict[str, float | int]:
    return asyncio.run(_measure())


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} = {v}")
