"""The shape of a hostile case and what every case builder shares (gateway.hostile).

A case is one request and the answers that would be correct for it (`expect`, from
OUTCOMES, and sometimes an exact status). It starts from a valid message or JSON transfer
that the sample directory would accept, built with gateway.sim_messages, so that a refusal
proves the one broken thing was caught.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

from clearing.model import SCHEMES, Transfer
from clearing.money import Money
from gateway import sim_messages as sm

MESSAGES_PATH = "/v1/schemes/{scheme}/messages"
XML = "application/xml"
JSON = "application/json"
OVERSIZED_BYTES = 50 * 1024 * 1024
MANY_BYTES_MAX = 3_900_000  # under the gateway's default 4 MiB body limit
COUNT_MAX = 1_000_000
# Outcome classes a judge assigns to an answer (see gateway.hostile_replay.classify).
REFUSED = "4xx"  # a 4xx answer (a native RJCT document or a problem+json)
REJECTED = "rjct"  # 200/201 with every transaction RJCT and a reason code
ACCEPTED = "accepted"  # a 2xx answer accepting at least one transaction (or serving a read)
OUTCOMES = frozenset({REFUSED, REJECTED, ACCEPTED})
NOT_ACCEPTED = frozenset({REFUSED, REJECTED})
ANY = OUTCOMES

# How the replayer authenticates a case.
SIGNED = "signed"  # a fresh, valid signature by `signer`
UNSIGNED = "unsigned"
STALE = "stale"  # created an hour ago
FUTURE = "future"  # created an hour ahead
REPLAYED = "replayed"  # the same signed request sent twice; the second answer is judged
WRONG_KEY = "wrong-key"  # key id of `signer`, signed with another participant's key
UNKNOWN_KEY = "unknown-key"  # a key id nobody registered
TAMPERED_BODY = "tampered-body"  # signed, then one byte of the body changed
TAMPERED_PATH = "tampered-path"  # signed for another path
UNCOVERED_TYPE = "uncovered-type"  # Content-Type added after signing
GARBAGE = "garbage"  # well-formed headers, random signature bytes
MALFORMED = "malformed"  # Signature-Input that is not a structured field
BAD_ALG = "bad-alg"  # alg other than ed25519
OPERATOR = "operator"  # the operator bearer token
BAD_TOKEN = "bad-token"  # a wrong operator token
RAW = "raw"  # `body` is a whole HTTP/1.1 request written to a socket as is
AUTH_MODES = frozenset({
    SIGNED, UNSIGNED, STALE, FUTURE, REPLAYED, WRONG_KEY, UNKNOWN_KEY, TAMPERED_BODY,
    TAMPERED_PATH, UNCOVERED_TYPE, GARBAGE, MALFORMED, BAD_ALG, OPERATOR, BAD_TOKEN, RAW,
})  # fmt: skip

SQL_NAMES = (
    "Robert'); DROP TABLE transfers;--",
    "' OR '1'='1",
    "x'; UPDATE clearing_positions SET net = 0; --",
    '"; DELETE FROM participants WHERE ""="',
    "1; SELECT pg_sleep(30)--",
    "$1 $$ %s %% {0} \\x00",
    "admin'/*",
    "UNION SELECT id, public_key_ed25519 FROM participants--",
)
ODD_NAMES = (
    "CHAN\tTai\tMan",
    "Line\nBreak",
    "Zero\u200bWidth\u200dJoin",
    "RTL \u202egnp.exe",
    "Emoji \U0001f4b8\U0001f4b0",
    "Combining e\u0301\u0301\u0301",
    "全角　ＣＨＡＮ",
    "Ｏ'Ｂｒｉｅｎ",
)
BAD_AMOUNTS = (
    "-100.00", "-0.01", "0.00", "0", "99999999999999999999.99", "1" + "0" * 40,
    "10000000000000.01", "1e5", "NaN", "Infinity", "0x10", "1,000.00", "", " ", "12.345",
    "+5.00", "１２３.００", "١٢٣", "5.", ".5", "--1", "1.0.0",
)  # fmt: skip
BAD_COUNTS = ("0", "-1", "abc", "99999999999999999999", "1.5", "", "2 2")
INVALID_UTF8 = (
    b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe4\xb8",
    b"\x80", b"\xf4\x90\x80\x80",
)  # fmt: skip
XML_ILLEGAL = (
    b"&#1;", b"&#x1B;", b"&#0;", b"&#xFFFE;", b"&#xD800;", b"\x01", b"\x00", b"\x1b[31m", b"\x0c",
)  # fmt: skip
FOREIGN_NAMESPACES = (
    "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.02",
    "urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08",
    "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.10",
    "",
    "urn:evil:example",
    "http://www.w3.org/1999/xhtml",
)


@dataclass(frozen=True, slots=True)
class Case:
    """One hostile request and the answers that would be correct for it."""

    n: int
    kind: str
    scheme: str | None  # the scheme of the message, None for JSON and HTTP-level cases
    method: str
    path: str
    body: bytes
    content_type: str | None
    auth: str
    signer: str | None
    expect: frozenset[str]
    status: int | None = None  # when set, the only acceptable HTTP status
    canaries: tuple[bytes, ...] = ()  # must never appear in the answer
    headers: tuple[tuple[str, str], ...] = ()
    stream_bytes: int = 0  # filler streamed after `body` (oversized bodies are never built)
    chunked: bool = False  # stream without Content-Length
    alt_signer: str | None = None  # the key used for WRONG_KEY

    def __post_init__(self) -> None:
        assert self.auth in AUTH_MODES, self.auth
        assert self.expect and self.expect <= OUTCOMES, self.expect

    @property
    def size_bytes(self) -> int:
        return len(self.body) + self.stream_bytes


@dataclass
class Ctx:
    """What a case builder draws from: senders per scheme, payees, the message time."""

    senders: dict[str, list[sm.Sender]]
    payees: list[sm.Payee]
    when: dt.datetime
    tag: str
    rng: random.Random = field(default_factory=random.Random)
    n: int = 0

    def sender(self, scheme: str) -> sm.Sender:
        return self.rng.choice(self.senders[scheme])

    def other(self, s: sm.Sender) -> sm.Sender:
        return self.rng.choice([o for o in self.senders[s.scheme] if o.id != s.id])

    def canary(self) -> bytes:
        return f"bgcanary{self.tag}{self.n:06d}".encode()


# --- valid starting points ------------------------------------------------------------------


def valid_transfers(ctx: Ctx, sender: sm.Sender, n_tx: int = 1) -> tuple[str, list[Transfer]]:
    """`n_tx` transfers the gateway would accept from `sender` (small amounts, open corridor)."""
    dsts = [d for d in sm.destinations(sender.scheme, now=ctx.when)
            if any(p.scheme == d and p.participant_id != sender.id for p in ctx.payees)]  # fmt: skip
    dst = ctx.rng.choice(dsts)
    ccy = sm.corridor_currencies(sender.scheme, dst)[0]
    payees = [p for p in ctx.payees if p.scheme == dst and p.participant_id != sender.id]
    msg_id = sm.message_id(sender, ctx.tag, ctx.n * 100)
    out = [
        sm.make_transfer(sender, ctx.rng.choice(payees), ctx.rng, msg_id=msg_id, created_at=ctx.when,
                         e2e=sm.end_to_end_id(sender, ctx.tag, ctx.n * 100 + 1 + i),
                         amount=Money(ctx.rng.randint(100, 5_000), ccy))
        for i in range(n_tx)
    ]  # fmt: skip
    return msg_id, out


def valid_message(ctx: Ctx, sender: sm.Sender, n_tx: int = 1) -> bytes:
    msg_id, ts = valid_transfers(ctx, sender, n_tx)
    return sm.encode(sender.scheme, ts, msg_id, ctx.when)


def transfer_json(t: Transfer) -> dict[str, Any]:
    """The JSON API form of a canonical transfer (what POST /v1/transfers takes)."""

    def party(p: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": p.name}
        if p.id is not None:
            out.update(id_type=str(p.id.type), id_value=p.id.value)
        return out

    def account(a: Any) -> dict[str, Any]:
        if a.proxy is not None:
            return {"proxy": {"type": str(a.proxy.type), "value": a.proxy.value}}
        return {"number": a.number}

    body: dict[str, Any] = {
        "msg_id": t.msg_id, "end_to_end_id": t.end_to_end_id, "amount": t.amount.format(),
        "currency": t.amount.currency, "debtor": party(t.debtor),
        "debtor_account": account(t.debtor_account), "creditor": party(t.creditor),
        "creditor_account": account(t.creditor_account),
    }  # fmt: skip
    if t.creditor_agent is not None:
        body["creditor_agent"] = {"clearing_system": t.creditor_agent.clearing_system,
                                  "member_id": t.creditor_agent.member_id}  # fmt: skip
    return body


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- shared by the case builders -----------------------------------------------------------


def make_case(ctx: Ctx, kind: str, **fields: Any) -> Case:
    fields.setdefault("scheme", None)
    fields.setdefault("method", "POST")
    fields.setdefault("signer", None)
    return Case(n=ctx.n, kind=kind, **fields)


def any_sender(ctx: Ctx) -> sm.Sender:
    return ctx.sender(ctx.rng.choice(SCHEMES))


def valid_json(ctx: Ctx, s: sm.Sender) -> dict[str, Any]:
    return transfer_json(valid_transfers(ctx, s, 1)[1][0])


def valid_target(ctx: Ctx, s: sm.Sender) -> tuple[str, str, bytes, str | None]:
    """(method, path, body, content type) of a request `s` could rightly make."""
    pick = ctx.rng.randrange(3)
    if pick == 0:
        return "POST", MESSAGES_PATH.format(scheme=s.scheme), valid_message(ctx, s), XML
    if pick == 1:
        return "POST", "/v1/transfers", json_bytes(valid_json(ctx, s)), JSON
    return "GET", ctx.rng.choice(["/v1/positions", "/v1/participants/me"]), b"", None
