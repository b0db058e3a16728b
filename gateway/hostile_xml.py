"""Hostile scheme messages: a valid pacs.008 or ibps.101 with one thing broken (gateway.hostile).

Each builder takes the case context, the sender and the valid message split into envelope
lines and XML document, and returns (body, expected outcomes, exact status, canaries).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from adapters.cn_ibps.mapping import NS_IBPS101
from adapters.pacs.mapping import NS_PACS008
from clearing.money import Money
from gateway import sim_messages as sm
from gateway.hostile_cases import (
    ACCEPTED,
    ANY,
    BAD_AMOUNTS,
    BAD_COUNTS,
    FOREIGN_NAMESPACES,
    INVALID_UTF8,
    MANY_BYTES_MAX,
    NOT_ACCEPTED,
    ODD_NAMES,
    REFUSED,
    REJECTED,
    SQL_NAMES,
    XML_ILLEGAL,
    Ctx,
    valid_message,
)

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
