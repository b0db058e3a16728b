"""A seeded corpus of malformed and hostile requests to the gateway, for reliability runs.

Every case starts from a valid message or JSON transfer that the sample directory would
accept, built with gateway.sim_messages, and breaks exactly one thing: an XML external entity
or an entity bomb, deep nesting, invalid UTF-8, a wrong namespace, a truncated document,
NbOfTxs or CtrlSum that do not add up, an amount that is negative, zero or too large, names
full of control characters or SQL, another participant's identity, a missing, bad, stale or
replayed signature, a wrong content type, a body of 50 MB. So a refusal proves that the one
broken thing was caught, not that the message was nonsense anyway.

A case says what answers are acceptable (`expect`, from OUTCOMES, and sometimes an exact
status); gateway.hostile_replay sends cases over HTTP and judges the answers. Signing happens
at send time, so a corpus can be built once and replayed later. Building is deterministic:
the same seed and count give the same cases, and case n depends only on (seed, n).

Cases whose hostile content is legitimate data (SQL-looking or unusual but printable names)
may be accepted: the property there is that they are stored and answered like any other
payment, never that they are refused.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import Any

from clearing.model import SCHEMES
from gateway import sim_messages as sm
from gateway.hostile_cases import (  # re-exported: the public face of a case
    ACCEPTED,
    ANY,
    AUTH_MODES,
    BAD_ALG,
    BAD_AMOUNTS,
    BAD_COUNTS,
    BAD_TOKEN,
    COUNT_MAX,
    FOREIGN_NAMESPACES,
    FUTURE,
    GARBAGE,
    INVALID_UTF8,
    JSON,
    MALFORMED,
    MANY_BYTES_MAX,
    MESSAGES_PATH,
    NOT_ACCEPTED,
    ODD_NAMES,
    OPERATOR,
    OUTCOMES,
    OVERSIZED_BYTES,
    RAW,
    REFUSED,
    REJECTED,
    REPLAYED,
    SIGNED,
    SQL_NAMES,
    STALE,
    TAMPERED_BODY,
    TAMPERED_PATH,
    UNCOVERED_TYPE,
    UNKNOWN_KEY,
    UNSIGNED,
    WRONG_KEY,
    XML,
    XML_ILLEGAL,
    Case,
    Ctx,
    any_sender,
    json_bytes,
    make_case,
    transfer_json,
    valid_json,
    valid_message,
    valid_target,
    valid_transfers,
)
from gateway.hostile_http import OTHER_KINDS
from gateway.hostile_xml import SCHEME_ONLY, XML_KINDS, split_document

RARE_KINDS = {"xml.many-transactions": 0.3, "http.oversized": 0.3}


# --- the corpus -------------------------------------------------------------------------------


def plan(seed: int, count: int) -> list[tuple[str, str | None]]:
    """(kind, scheme) per case: every XML kind in every scheme and every other kind once (in a
    seeded order), then weighted draws. Case n's draw depends only on (seed, n)."""
    base: list[tuple[str, str | None]] = [
        (k, s) for k in XML_KINDS for s in SCHEME_ONLY.get(k, SCHEMES)
    ]
    base += [(k, None) for k in OTHER_KINDS]
    random.Random(f"plan:{seed}").shuffle(base)
    names = kinds()
    weights = [RARE_KINDS.get(k, 1.0) for k in names]
    out = base[:count]
    for n in range(len(out), count):
        rng = random.Random(f"draw:{seed}:{n}")
        kind = rng.choices(names, weights)[0]
        out.append(
            (kind, rng.choice(SCHEME_ONLY.get(kind, SCHEMES)) if kind in XML_KINDS else None)
        )
    return out


def build_corpus(
    directory: Any,
    *,
    seed: int = 0,
    count: int = 1_000,
    when: dt.datetime | None = None,
    tag: str | None = None,
) -> list[Case]:
    """`count` hostile cases against the participants and proxies of `directory`.

    `when` is the message time (default now; corridors with service hours are chosen among
    those open then). `tag` goes into every message and end-to-end id (default from the
    seed): runs against one database need different tags to keep their ids apart.
    """
    if not 1 <= count <= COUNT_MAX:
        raise ValueError(f"count must lie in [1, {COUNT_MAX}]")
    senders: dict[str, list[sm.Sender]] = {}
    for p in directory.participants:
        if p.role == "provider" and p.status == "active":
            senders.setdefault(p.scheme, []).append(sm.as_sender(p))
    if any(len(senders.get(s, [])) < 2 for s in SCHEMES):
        raise ValueError("the directory needs two active providers in every scheme")
    ctx = Ctx(senders, sm.payees_from_directory(directory, random.Random(seed)),
              when or dt.datetime.now(dt.UTC).replace(microsecond=0), tag or f"H{seed % 10_000:04d}")  # fmt: skip
    cases = []
    for n, (kind, scheme) in enumerate(plan(seed, count)):
        ctx.n, ctx.rng = n, random.Random(f"case:{seed}:{n}")
        cases.append(_build(ctx, kind, scheme))
    return cases


def _build(ctx: Ctx, kind: str, scheme: str | None) -> Case:
    if kind in OTHER_KINDS:
        return OTHER_KINDS[kind](ctx)
    assert scheme is not None
    s = ctx.sender(scheme)
    head, doc = split_document(valid_message(ctx, s, n_tx=ctx.rng.choice([1, 1, 2, 3])))
    body, expect, status, canaries = XML_KINDS[kind](ctx, s, head, doc)
    return make_case(ctx, kind, scheme=scheme, path=MESSAGES_PATH.format(scheme=scheme), body=body,
                 content_type=XML, auth=SIGNED, signer=s.id, expect=expect, status=status,
                 canaries=canaries)  # fmt: skip


def kinds() -> list[str]:
    """Every kind a corpus draws from."""
    return [*XML_KINDS, *OTHER_KINDS]


def describe(cases: Sequence[Case]) -> dict[str, int]:
    """Cases per kind, for reports."""
    out: dict[str, int] = {}
    for c in cases:
        out[c.kind] = out.get(c.kind, 0) + 1
    return dict(sorted(out.items()))


__all__ = [
    "ACCEPTED",
    "ANY",
    "AUTH_MODES",
    "BAD_ALG",
    "BAD_AMOUNTS",
    "BAD_COUNTS",
    "BAD_TOKEN",
    "COUNT_MAX",
    "FOREIGN_NAMESPACES",
    "FUTURE",
    "GARBAGE",
    "INVALID_UTF8",
    "JSON",
    "MALFORMED",
    "MANY_BYTES_MAX",
    "MESSAGES_PATH",
    "NOT_ACCEPTED",
    "ODD_NAMES",
    "OPERATOR",
    "OTHER_KINDS",
    "OUTCOMES",
    "OVERSIZED_BYTES",
    "RARE_KINDS",
    "RAW",
    "REFUSED",
    "REJECTED",
    "REPLAYED",
    "SCHEME_ONLY",
    "SIGNED",
    "SQL_NAMES",
    "STALE",
    "TAMPERED_BODY",
    "TAMPERED_PATH",
    "UNCOVERED_TYPE",
    "UNKNOWN_KEY",
    "UNSIGNED",
    "WRONG_KEY",
    "XML",
    "XML_ILLEGAL",
    "XML_KINDS",
    "Case",
    "Ctx",
    "any_sender",
    "build_corpus",
    "describe",
    "json_bytes",
    "kinds",
    "make_case",
    "plan",
    "split_document",
    "transfer_json",
    "valid_json",
    "valid_message",
    "valid_target",
    "valid_transfers",
]
