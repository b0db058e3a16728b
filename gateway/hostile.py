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
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.cn_ibps.mapping import NS_IBPS101
from adapters.pacs.mapping import NS_PACS008
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
WRONG_TYPES = ("text/plain", JSON, "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
               "application/octet-stream", "text/html", "image/png")  # fmt: skip


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


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- XML surgery on our own valid output --------------------------------------------------


def split_document(body: bytes) -> tuple[bytes, bytes]:
    """(envelope lines, XML document): an IBPS message has {H:}/{S:} lines before the XML."""
    i = body.find(b"<")
    return (body[:i], body[i:]) if i > 0 else (b"", body)


def replace_text(doc: bytes, tag: str, new: bytes, count: int = 1) -> bytes:
    """Replace the text of the first `count` elements named `tag` (0: all of them)."""
    pattern = re.compile(rb"(<" + tag.encode() + rb"(?: [^>]*)?>)[^<]*(</" + tag.encode() + rb">)")
    return pattern.sub(lambda m: m.group(1) + new + m.group(2), doc, count=count)


def drop_element(doc: bytes, tag: str) -> bytes:
    """Remove every element named `tag` (not nested in itself) with everything inside it."""
    t = tag.encode()
    while (start := re.search(rb"<" + t + rb"[ >]", doc)) is not None:
        end = doc.find(b"</" + t + b">", start.start())
        if end < 0:
            break
        doc = doc[: start.start()] + doc[end + len(t) + 3 :]
    return doc


def _amount_tag(scheme: str) -> str:
    return "Amt" if scheme == "cn-ibps" else "IntrBkSttlmAmt"


def _namespace(scheme: str) -> str:
    return NS_IBPS101 if scheme == "cn-ibps" else NS_PACS008


def _with_doctype(doc: bytes, decl: bytes) -> bytes:
    if doc.startswith(b"<?xml"):
        end = doc.index(b"?>") + 2
        return doc[:end] + b"\n" + decl + b"\n" + doc[end:]
    return decl + b"\n" + doc


def _root_name(doc: bytes) -> bytes:
    m = re.search(rb"<(Document)[ >]", doc)
    return m.group(1) if m else b"Document"


Built = tuple[
    bytes, frozenset[str], int | None, tuple[bytes, ...]
]  # body, expect, status, canaries
XmlBuilder = Callable[[Ctx, sm.Sender, bytes, bytes], Built]


def _refused(body: bytes, *canaries: bytes) -> Built:
    return body, frozenset({REFUSED}), 400, canaries


def _entity_ref_in_name(doc: bytes, ref: bytes) -> bytes:
    return re.sub(rb"(<Dbtr><Nm>)[^<]*", lambda m: m.group(1) + ref, doc, count=1)


def x_xxe_file(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    c = ctx.canary()
    decl = b'<!DOCTYPE %s [ <!ENTITY %s SYSTEM "file:///etc/passwd"> ]>' % (_root_name(doc), c)
    body = head + _entity_ref_in_name(_with_doctype(doc, decl), b"&" + c + b";")
    return _refused(body, c, b"root:x:0:0", b"file:///etc/passwd")


def x_xxe_network(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    c = ctx.canary()
    url = b"http://127.0.0.1:9/" + c + b".dtd"
    decl = ctx.rng.choice(
        [
            b'<!DOCTYPE %s [ <!ENTITY %s SYSTEM "%s"> ]>' % (_root_name(doc), c, url),
            b'<!DOCTYPE %s SYSTEM "%s">' % (_root_name(doc), url),
            b'<!DOCTYPE %s [ <!ENTITY %% %s SYSTEM "%s"> %%%s; ]>' % (_root_name(doc), c, url, c),
        ]
    )
    body = head + _entity_ref_in_name(_with_doctype(doc, decl), b"&" + c + b";")
    return _refused(body, c, url)


def x_billion_laughs(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    c = ctx.canary()
    levels = ctx.rng.randint(5, 12)
    ents = [b'<!ENTITY %s0 "%s">' % (c, c)]
    for i in range(1, levels):
        ents.append(b'<!ENTITY %s%d "%s">' % (c, i, (b"&%s%d;" % (c, i - 1)) * 10))
    decl = b"<!DOCTYPE %s [\n%s\n]>" % (_root_name(doc), b"\n".join(ents))
    body = head + _entity_ref_in_name(_with_doctype(doc, decl), b"&%s%d;" % (c, levels - 1))
    return _refused(body, c)


def x_quadratic_blowup(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    c = ctx.canary()
    decl = b'<!DOCTYPE %s [ <!ENTITY %s "%s"> ]>' % (
        _root_name(doc),
        c,
        c * ctx.rng.randint(500, 5000),
    )
    body = head + _entity_ref_in_name(
        _with_doctype(doc, decl), (b"&" + c + b";") * ctx.rng.randint(100, 2000)
    )
    return _refused(body, c)


def x_deep_nesting(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    depth = ctx.rng.choice([17, 64, 257, 5_000, 100_000])
    inner = b"<a>" * depth + b"x" + b"</a>" * depth
    if ctx.rng.random() < 0.5:  # inside a real field
        body = head + re.sub(rb"(<Cdtr><Nm>)[^<]*", lambda m: m.group(1) + inner, doc, count=1)
    else:  # the whole document
        body = (
            head + b'<Document xmlns="%s">' % _namespace(s.scheme).encode() + inner + b"</Document>"
        )
    return _refused(body)


def x_invalid_utf8(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    bad = ctx.rng.choice(INVALID_UTF8)
    tag = ctx.rng.choice([b"<Dbtr><Nm>", b"<Cdtr><Nm>", b"<EndToEndId>", b"<MsgId>"])
    i = doc.find(tag)
    body = head + (doc[: i + len(tag)] + bad + doc[i + len(tag) :] if i >= 0 else doc + bad)
    return _refused(body)


def x_other_encoding(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    choice = ctx.rng.randrange(4)
    if choice == 0:
        enc = ctx.rng.choice([b"ISO-8859-1", b"UTF-16", b"EBCDIC-US", b"GB2312", b"Big5", b"UTF-7"])
        decl = b'<?xml version="1.0" encoding="%s"?>' % enc
        body = decl + re.sub(rb"^<\?xml[^>]*\?>", b"", doc)
    elif choice == 1:
        body = doc.decode("utf-8").encode("utf-16")
    elif choice == 2:
        body = doc.decode("utf-8").encode("utf-32-le")
    else:
        body = b"\xfe\xff" + doc  # a UTF-16 byte-order mark before UTF-8 bytes
    return _refused(head + body)


def x_illegal_chars(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    ch = ctx.rng.choice(XML_ILLEGAL)
    tag = ctx.rng.choice(["Nm", "EndToEndId", "MsgId", _amount_tag(s.scheme)])
    m = re.search(rb"(<" + tag.encode() + rb"(?: [^>]*)?>)([^<]*)", doc)
    assert m is not None
    body = doc[: m.end(1)] + m.group(2)[:3] + ch + m.group(2)[3:] + doc[m.end(2) :]
    return _refused(head + body)


def x_truncated(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    end = doc.rindex(b"</Document>")
    cut = ctx.rng.choice([0, 1, 2, 10, ctx.rng.randrange(1, end), end, end + 5])
    return _refused(head + doc[:cut])


def x_wrong_namespace(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    others = [*FOREIGN_NAMESPACES, NS_PACS008 if s.scheme == "cn-ibps" else NS_IBPS101]
    new = ctx.rng.choice(others).encode()
    body = doc.replace(_namespace(s.scheme).encode(), new, 1)
    if not new:
        body = body.replace(b' xmlns=""', b"", 1)
    return _refused(head + body)


def x_wrong_root(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    ns = _namespace(s.scheme).encode()
    body = ctx.rng.choice([
        b"", b"   \n\t ", b"<Document/>", b'<Document xmlns="%s"/>' % ns,
        b'<Document xmlns="%s"><Other/></Document>' % ns,
        b'<?xml version="1.0"?><a/><b/>', doc + b"<Document/>", doc + b"trailing garbage",
        b'{"msg_id": "not xml"}', bytes(ctx.rng.getrandbits(8) for _ in range(ctx.rng.randint(1, 512))),
        b"<![CDATA[" + doc + b"]]>", b"<!-- " + doc + b" -->",
        doc.replace(b"FIToFICstmrCdtTrf", b"FIToFIPmtStsRpt").replace(b"CstmrCdtTrf>", b"Rpt>"),
    ])  # fmt: skip
    return _refused(head + body)


def x_count_mismatch(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    n = int(re.search(rb"<NbOfTxs>(\d+)</NbOfTxs>", doc).group(1))  # type: ignore[union-attr]
    new = ctx.rng.choice([str(n + ctx.rng.randint(1, 5)), str(max(n - 1, 0)), *BAD_COUNTS])
    return head + replace_text(doc, "NbOfTxs", new.encode()), NOT_ACCEPTED, None, ()


def x_ctrl_sum_mismatch(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    m = re.search(rb"<CtrlSum(?: [^>]*)?>([^<]*)</CtrlSum>", doc)
    total = Money.parse(m.group(1).decode(), "HKD").minor if m else 100
    new = ctx.rng.choice([total + 1, total - 1, total * 10, -total, total + 10**15])
    sign, (units, cents) = "-" if new < 0 else "", divmod(abs(new), 100)
    text = ctx.rng.choice([f"{sign}{units}.{cents:02d}", "abc", "1e3", "-0.00.1"])
    if m is None:  # a message without CtrlSum gets a wrong one
        doc = doc.replace(b"</NbOfTxs>", b"</NbOfTxs><CtrlSum>%s</CtrlSum>" % text.encode(), 1)
        return head + doc, NOT_ACCEPTED, None, ()
    return head + replace_text(doc, "CtrlSum", text.encode()), NOT_ACCEPTED, None, ()


def _set_amount(ctx: Ctx, s: sm.Sender, doc: bytes, amount: str) -> bytes:
    doc = replace_text(doc, _amount_tag(s.scheme), amount.encode(), count=0)
    if ctx.rng.random() < 0.5:  # also make the control sum agree, so the amount itself is judged
        doc = replace_text(doc, "CtrlSum", amount.encode())
    return doc


def x_bad_amount(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    return head + _set_amount(ctx, s, doc, ctx.rng.choice(BAD_AMOUNTS)), NOT_ACCEPTED, None, ()


def x_bad_currency(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    ccy = ctx.rng.choice([b"XXX", b"hkd", b"", b"HKDX", b"\xe2\x82\xac", b"US D", b"123", b"JPY"])
    body = re.sub(rb'Ccy="[A-Z]{3}"', b'Ccy="' + ccy + b'"', doc)
    return head + body, NOT_ACCEPTED, None, ()


def x_long_field(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    """A field past its length limit (ids 35, names 140) in every transaction."""
    tag, size_min = ctx.rng.choice([("EndToEndId", 36), ("MsgId", 36), ("Nm", 141), ("TxId", 36)])
    occurrences = max(doc.count(f"<{tag}>".encode()), 1)
    size = min(ctx.rng.choice([size_min, 1_000, 100_000, 1_000_000]), MANY_BYTES_MAX // occurrences)
    return head + replace_text(doc, tag, b"A" * size, count=0), NOT_ACCEPTED, None, ()


def x_missing_element(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    tag = ctx.rng.choice(["MsgId", "EndToEndId", _amount_tag(s.scheme), "DbtrAgt", "Dbtr", "CdtrAcct",
                          "GrpHdr", "CreDtTm", "NbOfTxs", "Cdtr"])  # fmt: skip
    return head + drop_element(doc, tag), NOT_ACCEPTED, None, ()


def x_duplicate_e2e(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    """Every transaction of a message (two or more) carries the same end-to-end id."""
    if doc.count(b"<EndToEndId>") < 2:
        head, doc = split_document(valid_message(ctx, s, n_tx=ctx.rng.randint(2, 4)))
    e2e = re.findall(rb"<EndToEndId>([^<]*)</EndToEndId>", doc)
    return head + replace_text(doc, "EndToEndId", e2e[0], count=0), NOT_ACCEPTED, None, ()


def x_sql_names(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    from adapters.xmlsafe import text

    name = ctx.rng.choice(SQL_NAMES)
    tag = ctx.rng.choice([b"<Dbtr><Nm>", b"<Cdtr><Nm>"])
    body = re.sub(
        re.escape(tag) + rb"[^<]*", lambda m: tag + text(name[:40]).encode(), doc, count=1
    )
    return head + body, frozenset({ACCEPTED, REJECTED}), None, ()


def x_odd_names(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    from adapters.xmlsafe import text

    name = ctx.rng.choice(ODD_NAMES)
    body = re.sub(rb"<Cdtr><Nm>[^<]*", lambda m: b"<Cdtr><Nm>" + text(name).encode(), doc, count=1)
    return head + body, ANY, None, ()


def x_hidden_extras(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    """Comments, processing instructions, CDATA, XInclude and schema locations: nothing fetched."""
    c = ctx.canary()
    extra = ctx.rng.choice(
        [
            b"<?xml-stylesheet href='http://127.0.0.1:9/%s.xsl'?>" % c,
            b"<!-- %s -->" % c,
            b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" />',
        ]
    )
    if ctx.rng.random() < 0.5:
        body = doc.replace(b"<MsgId>", extra + b"<MsgId>", 1)
    else:
        body = re.sub(
            rb"(<Document )",
            b'\\1xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            b'xsi:schemaLocation="http://127.0.0.1:9/' + c + b'.xsd" ',
            doc,
            count=1,
        )
    return head + body, ANY, None, (c, b"root:x:0:0")


def x_another_identity(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    """The signer's debtor agent (and, for IBPS, its header and instructing party) replaced by
    another participant's: a provider may only debit itself."""
    other = ctx.other(s)
    mine, theirs = s.clearing_code.encode(), other.clearing_code.encode()
    body = doc.replace(b">" + mine + b"<", b">" + theirs + b"<")
    return head.replace(mine, theirs) + body, frozenset({REFUSED}), 403, ()


def x_many_transactions(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    """Thousands of copies of one transaction, just under the body limit: every copy is
    refused as a duplicate, and the whole message must still be read within bounded memory."""
    tx_tag = b"CstmrCdtTrfInf" if s.scheme == "cn-ibps" else b"CdtTrfTxInf"
    start = doc.index(b"<" + tx_tag + b">")
    end = doc.index(b"</" + tx_tag + b">") + len(tx_tag) + 3
    rest = doc[:start] + doc[doc.rindex(b"</" + tx_tag + b">") + len(tx_tag) + 3 :]
    copies = min(
        ctx.rng.choice([500, 2_000, 10_000]), (MANY_BYTES_MAX - len(rest)) // (end - start)
    )
    tx = doc[start:end]
    amount = re.search(rb">([0-9.]+)</" + _amount_tag(s.scheme).encode() + rb">", tx)
    assert amount is not None
    units, _, cents = amount.group(1).decode().partition(".")
    total = (int(units) * 100 + int(cents.ljust(2, "0"))) * copies  # control totals that add up
    body = rest[:start] + tx * copies + rest[start:]
    body = replace_text(body, "NbOfTxs", str(copies).encode())
    body = replace_text(body, "CtrlSum", f"{total // 100}.{total % 100:02d}".encode())
    return head + body, NOT_ACCEPTED, None, ()


def x_ibps_envelope(ctx: Ctx, s: sm.Sender, head: bytes, doc: bytes) -> Built:
    line = head.rstrip(b"\n")
    variant = ctx.rng.randrange(7)
    if variant == 0:
        head = line[: ctx.rng.randrange(1, len(line))] + b"\n"
    elif variant == 1:
        head = b""
    elif variant == 2:
        head = line.replace(b"ibps.101", b"ibps.999", 1) + b"\n"
    elif variant == 3:
        head = line[:-2] + "号}".encode() + b"\n"
    elif variant == 4:
        head = line + b"\n{S:not*base64!!}\n"
    elif variant == 5:
        head = line + b"\n{S:" + b"QUFB" * 5000 + b"}\n"
    else:
        head = b"{H:" + b" " * (len(line) - 4) + b"}\n"
    return head + doc, NOT_ACCEPTED, None, ()


XML_KINDS: dict[str, XmlBuilder] = {
    "xml.xxe-file": x_xxe_file,
    "xml.xxe-network": x_xxe_network,
    "xml.billion-laughs": x_billion_laughs,
    "xml.quadratic-blowup": x_quadratic_blowup,
    "xml.deep-nesting": x_deep_nesting,
    "xml.invalid-utf8": x_invalid_utf8,
    "xml.other-encoding": x_other_encoding,
    "xml.illegal-chars": x_illegal_chars,
    "xml.truncated": x_truncated,
    "xml.wrong-namespace": x_wrong_namespace,
    "xml.wrong-root": x_wrong_root,
    "xml.nboftxs-mismatch": x_count_mismatch,
    "xml.ctrlsum-mismatch": x_ctrl_sum_mismatch,
    "xml.bad-amount": x_bad_amount,
    "xml.bad-currency": x_bad_currency,
    "xml.long-field": x_long_field,
    "xml.missing-element": x_missing_element,
    "xml.duplicate-e2e": x_duplicate_e2e,
    "xml.sql-names": x_sql_names,
    "xml.odd-names": x_odd_names,
    "xml.hidden-extras": x_hidden_extras,
    "xml.another-identity": x_another_identity,
    "xml.many-transactions": x_many_transactions,
    "ibps.envelope": x_ibps_envelope,
}
SCHEME_ONLY = {"ibps.envelope": ("cn-ibps",)}
RARE_KINDS = {"xml.many-transactions": 0.3, "http.oversized": 0.3}


# --- HTTP, signature, operator and JSON cases ---------------------------------------------


def _case(ctx: Ctx, kind: str, **fields: Any) -> Case:
    fields.setdefault("scheme", None)
    fields.setdefault("method", "POST")
    fields.setdefault("signer", None)
    return Case(n=ctx.n, kind=kind, **fields)


def _any_sender(ctx: Ctx) -> sm.Sender:
    return ctx.sender(ctx.rng.choice(SCHEMES))


def _valid_json(ctx: Ctx, s: sm.Sender) -> dict[str, Any]:
    return transfer_json(valid_transfers(ctx, s, 1)[1][0])


def _valid_target(ctx: Ctx, s: sm.Sender) -> tuple[str, str, bytes, str | None]:
    """(method, path, body, content type) of a request `s` could rightly make."""
    pick = ctx.rng.randrange(3)
    if pick == 0:
        return "POST", MESSAGES_PATH.format(scheme=s.scheme), valid_message(ctx, s), XML
    if pick == 1:
        return "POST", "/v1/transfers", _json_bytes(_valid_json(ctx, s)), JSON
    return "GET", ctx.rng.choice(["/v1/positions", "/v1/participants/me"]), b"", None


def k_oversized(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    if ctx.rng.random() < 0.5:
        path, body, ct = MESSAGES_PATH.format(scheme=s.scheme), valid_message(ctx, s)[:-20], XML
    else:
        path, body, ct = "/v1/transfers", b'{"msg_id":"', JSON
    return _case(ctx, "http.oversized", path=path, body=body, content_type=ct, auth=SIGNED,
                 signer=s.id, expect=frozenset({REFUSED}), status=413,
                 stream_bytes=OVERSIZED_BYTES, chunked=ctx.rng.random() < 0.5)  # fmt: skip


def k_wrong_content_type(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    if ctx.rng.random() < 0.5:
        path, body = MESSAGES_PATH.format(scheme=s.scheme), valid_message(ctx, s)
        ct = ctx.rng.choice([t for t in WRONG_TYPES if t != XML])
    else:
        path, body = "/v1/transfers", _json_bytes(_valid_json(ctx, s))
        ct = ctx.rng.choice([XML, "text/xml", *[t for t in WRONG_TYPES if t != JSON]])
    return _case(ctx, "http.wrong-content-type", path=path, body=body, content_type=ct, auth=SIGNED,
                 signer=s.id, expect=frozenset({REFUSED}), status=415)  # fmt: skip


def k_wrong_method(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    method, path = ctx.rng.choice([
        ("GET", MESSAGES_PATH.format(scheme=s.scheme)), ("PUT", "/v1/transfers"),
        ("DELETE", "/v1/transfers"), ("PATCH", "/v1/positions"), ("DELETE", "/v1/participants/me"),
        ("PUT", MESSAGES_PATH.format(scheme=s.scheme)), ("POST", "/v1/positions"),
    ])  # fmt: skip
    return _case(ctx, "http.wrong-method", method=method, path=path, body=b"", content_type=None,
                 auth=SIGNED, signer=s.id, expect=frozenset({REFUSED}), status=405)  # fmt: skip


def k_wrong_scheme(ctx: Ctx) -> Case:
    """A valid message posted under another scheme than the signer's, or an unknown one."""
    s = _any_sender(ctx)
    other = ctx.rng.choice([x for x in SCHEMES if x != s.scheme])
    scheme, status = ctx.rng.choice(
        [(other, 403), ("xx-fps", 404), ("HK-FPS", 404), ("%2E%2E", 404)]
    )
    return _case(ctx, "http.wrong-scheme", path=MESSAGES_PATH.format(scheme=scheme),
                 body=valid_message(ctx, s), content_type=XML, auth=SIGNED, signer=s.id,
                 expect=frozenset({REFUSED}), status=status)  # fmt: skip


def k_bad_path(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    path = ctx.rng.choice([
        "/v1/transfers/" + "9" * ctx.rng.choice([65, 1_000, 4_000]), "/v1/transfers/%00",
        "/v1/transfers/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/v1/transfers/%27%20OR%201%3D1--",
        "/v1/transfers/%ED%A0%80", "/v1/transfers/%FF%FE", "/v1//transfers", "/v1/nope",
        "/v1/schemes/hk-fps/messages/extra", "/v1/transfers/x%0d%0aSet-Cookie:%20a=b",
        "/v1/transfers/%E4%BD%A0%E5%A5%BD", "/v1/transfers/a;b=c",
    ])  # fmt: skip
    return _case(ctx, "http.bad-path", method="GET", path=path, body=b"", content_type=None,
                 auth=SIGNED, signer=s.id, expect=frozenset({REFUSED}))  # fmt: skip


def k_header_abuse(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    method, path, body, ct = _valid_target(ctx, s)
    headers = ctx.rng.choice(
        [
            (("X-Request-Id", "r" * 9_000),),
            (("X-Padding", "p" * 20_000),),
            tuple((f"X-Many-{i}", "v") for i in range(200)),
        ]
    )
    return _case(ctx, "http.header-abuse", method=method, path=path, body=body, content_type=ct,
                 auth=SIGNED, signer=s.id, headers=headers, expect=ANY)  # fmt: skip


_SIG_STATUS = {STALE: 401, FUTURE: 401, REPLAYED: 401, WRONG_KEY: 401, UNKNOWN_KEY: 401,
               TAMPERED_BODY: 401, TAMPERED_PATH: 401, UNCOVERED_TYPE: 401, GARBAGE: 401,
               UNSIGNED: 401, BAD_ALG: 401}  # fmt: skip
MALFORMED_HEADERS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("Signature", ""),),
    (("Signature-Input", ""),),
    (("Content-Digest", ""),),
    (("Content-Digest", "sha-256=:" + "A" * 43 + "=:"),),
    (("Content-Digest", "md5=:AAAA:"),),
    (("Signature-Input", "sig1=garbage("),),
    (
        (
            "Signature-Input",
            'sig1=("@method");keyid="hk-801";created=1, sig2=("@path");keyid="hk-801";created=1',
        ),
    ),
    (("Signature-Input", 'sig1=();keyid="hk-801";created=1'),),
    (("Signature-Input", 'sig1=("@method" "@path" "content-digest");keyid="../../etc";created=1'),),
    (
        (
            "Signature-Input",
            'sig1=("@method" "@path" "content-digest");keyid="hk-801";created="now"',
        ),
    ),
    (("Signature", "sig1=:" + "A" * 6_000 + ":"),),
    (("Signature", "sig1=not-a-byte-sequence"),),
    (("Signature", "sig2=:AAAA:"),),
)


def k_signature(auth: str) -> Callable[[Ctx], Case]:
    """A request `s` could rightly make, whose authentication fails in one way (`auth`)."""

    def build(ctx: Ctx) -> Case:
        s = _any_sender(ctx)
        method, path, body, ct = _valid_target(ctx, s)
        if auth == TAMPERED_BODY and not body:
            method, path, body, ct = "POST", "/v1/transfers", _json_bytes(_valid_json(ctx, s)), JSON
        if auth == UNCOVERED_TYPE and ct is None:
            method, body, ct = "POST", b"{}", JSON
        headers = ctx.rng.choice(MALFORMED_HEADERS) if auth == MALFORMED else ()
        alt = ctx.other(s).id if auth == WRONG_KEY else None
        return _case(ctx, f"sig.{auth}", method=method, path=path, body=body, content_type=ct,
                     auth=auth, signer=s.id, alt_signer=alt, headers=headers,
                     expect=frozenset({REFUSED}), status=401)  # fmt: skip

    return build


def k_operator_auth(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    method, path, body = ctx.rng.choice([
        ("POST", "/v1/operator/windows/close", b""),
        ("PUT", f"/v1/operator/limits/{s.id}/HKD", b'{"net_debit_cap":"99999999.00","liquidity_cover":"99999999.00"}'),
        ("PATCH", f"/v1/operator/participants/{s.id}", b'{"status":"suspended"}'),
        ("POST", "/v1/operator/settlements/1/abort", b""),
    ])  # fmt: skip
    auth = ctx.rng.choice([UNSIGNED, BAD_TOKEN, SIGNED])
    return _case(ctx, "op.no-token", method=method, path=path, body=body,
                 content_type=JSON if body else None, auth=auth, signer=s.id,
                 expect=frozenset({REFUSED}), status=401)  # fmt: skip


def k_operator_bad_input(ctx: Ctx) -> Case:
    """The right token, requests that must change nothing: every body or id is invalid."""
    s = _any_sender(ctx)
    huge = ctx.rng.choice(["99999999999999999999999", "-1", "1e3", "abc", "%00", "0x10", "1.5"])
    method, path, body = ctx.rng.choice([
        ("PUT", f"/v1/operator/limits/{s.id}/HKD", b'{"net_debit_cap":"-1.00","liquidity_cover":"1.00"}'),
        ("PUT", f"/v1/operator/limits/{s.id}/HKD", b'{"net_debit_cap":"1e9","liquidity_cover":"1e9"}'),
        ("PUT", f"/v1/operator/limits/{s.id}/HKD", b'{"net_debit_cap":"1.00001","liquidity_cover":"1.00"}'),
        ("PUT", f"/v1/operator/limits/{s.id}/XXX", b'{"net_debit_cap":"1.00","liquidity_cover":"1.00"}'),
        ("PUT", f"/v1/operator/limits/{s.id}/%00", b'{"net_debit_cap":"1.00","liquidity_cover":"1.00"}'),
        ("PUT", f"/v1/operator/limits/{s.id}/HKD", b'{"net_debit_cap":"1.00"}'),
        ("PUT", "/v1/operator/limits/nobody-x/HKD", b'{"net_debit_cap":"1.00","liquidity_cover":"1.00"}'),
        ("PATCH", "/v1/operator/participants/nobody-x", b'{"status":"suspended"}'),
        ("PATCH", "/v1/operator/participants/nobody-x", b'{"name":"a\\u0000b"}'),
        ("PATCH", "/v1/operator/participants/%00", b'{"name":"x"}'),
        ("PATCH", f"/v1/operator/participants/{s.id}", b'{"status":"deleted"}'),
        ("PATCH", f"/v1/operator/participants/{s.id}", b'{"public_key_ed25519":"' + b"!" * 44 + b'"}'),
        ("POST", "/v1/operator/participants", b'{"id":"Bad Id","name":"x","scheme":"hk-fps","clearing_code":"999","public_key_ed25519":"' + b"A" * 43 + b'="}'),
        ("POST", "/v1/operator/participants", b'{"id":"zz-1","name":"a\\u0000","scheme":"hk-fps","clearing_code":"999","public_key_ed25519":"' + b"A" * 43 + b'="}'),
        ("POST", "/v1/operator/participants", b'{"id":"zz-2","name":"x","scheme":"hk-fps","clearing_code":"999","public_key_ed25519":"' + b"#" * 44 + b'"}'),
        ("POST", f"/v1/operator/settlements/{huge}/confirm", b'{"participant_id":"hk-801","currency":"HKD","reference":"x"}'),
        ("POST", f"/v1/operator/settlements/{huge}/abort", b""),
        ("POST", "/v1/operator/settlements/987654321/abort", b""),
        ("POST", "/v1/operator/windows/close", b"{"),
    ])  # fmt: skip
    expect = frozenset({REFUSED})
    if path == "/v1/operator/windows/close":
        # Closing is the one operator call without a body: a junk body is ignored, so this
        # case is sent with the wrong token instead (the right one would close the window).
        return _case(ctx, "op.bad-input", method=method, path=path, body=body, content_type=JSON,
                     auth=BAD_TOKEN, expect=expect, status=401)  # fmt: skip
    return _case(ctx, "op.bad-input", method=method, path=path, body=body,
                 content_type=JSON if body else None, auth=OPERATOR, expect=expect)  # fmt: skip


def _json_case(ctx: Ctx, kind: str, s: sm.Sender, body: bytes, expect: frozenset[str],
               path: str = "/v1/transfers") -> Case:  # fmt: skip
    return _case(
        ctx, kind, path=path, body=body, content_type=JSON, auth=SIGNED, signer=s.id, expect=expect
    )


def k_json_malformed(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    good = _json_bytes(_valid_json(ctx, s))
    bad = ctx.rng.choice(INVALID_UTF8)
    body = ctx.rng.choice([
        b"{", b"[]", b"null", b'"x"', b"1e400", b"", good + b"garbage", good[:-1],
        b"\xef\xbb\xbf" + good, good.replace(b'"name":"', b'"name":"' + bad, 1),
        good.replace(b'"amount":"', b'"amount":NaN,"x":"', 1),
        good.replace(b'"currency":', b'"amount":-1,"currency":', 1), good.replace(b"{", b"{{", 1),
        good.replace(b'"', b"'"), b"\x00" * 64,
    ])  # fmt: skip
    return _json_case(ctx, "json.malformed", s, body, frozenset({REFUSED}))


def k_json_deep(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    depth = ctx.rng.choice([300, 10_000, 500_000])
    body = ctx.rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth])
    if ctx.rng.random() < 0.5:  # nested inside a real field
        obj = _valid_json(ctx, s)
        body = _json_bytes(obj).replace(b'"creditor":{', b'"creditor":{"x":' + body + b",", 1)
    return _json_case(ctx, "json.deep", s, body, frozenset({REFUSED}))


def k_json_types(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    obj = _valid_json(ctx, s)
    key, value = ctx.rng.choice([
        ("amount", 10.0), ("amount", 1000), ("amount", None), ("amount", ["1.00"]),
        ("currency", "hkd"), ("evil", 1), ("debtor", []), ("debtor", "x"), ("debtor_account", {}),
        ("debtor_account", {"number": "1", "proxy": {"type": "XXXX", "value": "1"}}),
        ("creditor_agent", {"clearing_system": "SWIFT", "member_id": "1"}), ("msg_id", ""),
        ("end_to_end_id", "a" * 36), ("end_to_end_id", "semi;colon"), ("uetr", "not-a-uuid"),
    ])  # fmt: skip
    obj[key] = value
    if ctx.rng.random() < 0.3:
        del obj[
            ctx.rng.choice(["msg_id", "end_to_end_id", "amount", "currency", "debtor", "creditor"])
        ]
    expect = NOT_ACCEPTED
    if ctx.rng.random() < 0.1 and "creditor_agent" in obj and key != "creditor_agent":
        # No creditor account beside a creditor agent: the JSON API accepts this today and the
        # delivery aborts it (AC01, nothing can carry it); pacs and IBPS refuse it at once.
        obj["creditor_account"], expect = {}, ANY
    return _json_case(ctx, "json.wrong-types", s, _json_bytes(obj), expect)


def k_json_amount(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    obj = _valid_json(ctx, s)
    obj["amount"] = ctx.rng.choice([*BAD_AMOUNTS, "9999999999999.99", "0.001"])
    if ctx.rng.random() < 0.3:
        obj["currency"] = ctx.rng.choice(["XXX", "JPY", "EUR", "ABC"])
    return _json_case(ctx, "json.bad-amount", s, _json_bytes(obj), NOT_ACCEPTED)


def k_json_nul(ctx: Ctx) -> Case:
    """U+0000 in a string: valid JSON, but no text column can hold it."""
    s = _any_sender(ctx)
    obj = _valid_json(ctx, s)
    where = ctx.rng.choice(
        ["debtor", "creditor", "remittance_info", "debtor_id", "proxy", "quote_id"]
    )
    if where in ("debtor", "creditor"):
        obj[where]["name"] = "A\u0000B"
    elif where == "debtor_id":
        obj["debtor"]["id_value"] = "\u0000"
    elif where == "proxy":
        obj["creditor_account"] = {"proxy": {"type": "EMAL", "value": "a\u0000@example.hk"}}
    else:
        obj[where] = "x\u0000y"
    return _json_case(ctx, "json.nul", s, _json_bytes(obj), frozenset({REFUSED}))


def k_json_sql(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    obj = _valid_json(ctx, s)
    obj[ctx.rng.choice(["debtor", "creditor"])]["name"] = ctx.rng.choice(SQL_NAMES)
    obj["remittance_info"] = ctx.rng.choice(SQL_NAMES)
    return _json_case(ctx, "json.sql-names", s, _json_bytes(obj), frozenset({ACCEPTED, REJECTED}))


def k_json_odd(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    obj = _valid_json(ctx, s)
    obj["creditor"]["name"] = ctx.rng.choice(
        [*ODD_NAMES, "a\u0001b", "esc\u001b[2J", "del\u007f", "bad\ufffe"]
    )
    return _json_case(ctx, "json.odd-names", s, _json_bytes(obj), ANY)


def k_json_long(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    obj = _valid_json(ctx, s)
    size = ctx.rng.choice([141, 10_000, 1_000_000])
    obj[ctx.rng.choice(["debtor", "creditor"])]["name"] = "N" * size
    return _json_case(ctx, "json.long-strings", s, _json_bytes(obj), frozenset({REFUSED}))


def k_json_quote(ctx: Ctx) -> Case:
    s = _any_sender(ctx)
    if ctx.rng.random() < 0.5:
        obj = _valid_json(ctx, s)
        # An unknown quote refuses a conversion; a same-currency payment needs none (ANY).
        obj["quote_id"] = ctx.rng.choice(["no-such-quote", "' OR 1=1 --", "x" * 64, "../../etc"])
        return _json_case(ctx, "json.bad-quote", s, _json_bytes(obj), ANY)
    body = ctx.rng.choice([
        b'{"source_currency":"HKD","target_currency":"HKD"}', b'{"source_currency":"XXX","target_currency":"CNY"}',
        b'{"source_currency":"hkd","target_currency":"CNY"}', b'{"source_currency":"HKD"}', b"{}",
        b'{"source_currency":"HKD","target_currency":"CNY","rate":"9"}',
    ])  # fmt: skip
    return _json_case(ctx, "json.bad-quote", s, body, frozenset({REFUSED}), path="/v1/quotes")


def _raw(target: bytes, *lines: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join([target, b"Host: baygate", *lines, b"", body])


def k_raw_http(ctx: Ctx) -> Case:
    """Requests no HTTP client would send: smuggling, bad lengths, broken chunking."""
    p = b"/v1/transfers"
    body = ctx.rng.choice([
        _raw(b"POST " + p + b" HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: chunked",
             body=b"0\r\n\r\nGET /v1/operator/windows/close HTTP/1.1\r\nHost: x\r\n\r\n"),
        _raw(b"POST " + p + b" HTTP/1.1", b"Content-Length: abc", body=b"{}"),
        _raw(b"POST " + p + b" HTTP/1.1", b"Content-Length: -1", body=b"{}"),
        _raw(b"POST " + p + b" HTTP/1.1", b"Content-Length: 2", b"Content-Length: 3", body=b"{}"),
        _raw(b"POST " + p + b" HTTP/1.1", b"Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n"),
        _raw(b"GARBAGE"),
        _raw(b"GET " + p + b" HTTP/1.1", b"No-Colon-Here"),
        _raw(b"GET " + p + b" HTTP/1.1", b"X-Nul: a\x00b"),
        _raw(b"GET /v1/transfers/\x00 HTTP/1.1"),
        _raw(b"GET " + p + b" HTTP/1.1", b" Folded: header"),
    ])  # fmt: skip
    return _case(ctx, "http.raw", method="RAW", path=p.decode(), body=body, content_type=None,
                 auth=RAW, expect=frozenset({REFUSED}))  # fmt: skip


OTHER_KINDS: dict[str, Callable[[Ctx], Case]] = {
    "http.oversized": k_oversized,
    "http.wrong-content-type": k_wrong_content_type,
    "http.wrong-method": k_wrong_method,
    "http.wrong-scheme": k_wrong_scheme,
    "http.bad-path": k_bad_path,
    "http.header-abuse": k_header_abuse,
    "http.raw": k_raw_http,
    **{f"sig.{a}": k_signature(a) for a in sorted([*_SIG_STATUS, MALFORMED])},
    "op.no-token": k_operator_auth,
    "op.bad-input": k_operator_bad_input,
    "json.malformed": k_json_malformed,
    "json.deep": k_json_deep,
    "json.wrong-types": k_json_types,
    "json.bad-amount": k_json_amount,
    "json.nul": k_json_nul,
    "json.sql-names": k_json_sql,
    "json.odd-names": k_json_odd,
    "json.long-strings": k_json_long,
    "json.bad-quote": k_json_quote,
}


# --- the corpus -------------------------------------------------------------------------------


def plan(seed: int, count: int) -> list[tuple[str, str | None]]:
    """(kind, scheme) per case: every XML kind in every scheme and every other kind once (in a
    seeded order), then weighted draws. Case n's draw depends only on (seed, n)."""
    base = [(k, s) for k in XML_KINDS for s in SCHEME_ONLY.get(k, SCHEMES)]
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
    return _case(ctx, kind, scheme=scheme, path=MESSAGES_PATH.format(scheme=scheme), body=body,
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
