"""Hostile HTTP, signature, operator and JSON API requests (gateway.hostile).

Each builder takes the case context and returns a whole Case: the request, how the replayer
authenticates it, and the answers that would be correct.
"""

from __future__ import annotations

from collections.abc import Callable

from clearing.model import SCHEMES
from gateway import sim_messages as sm
from gateway.hostile_cases import (
    ACCEPTED,
    ANY,
    BAD_ALG,
    BAD_AMOUNTS,
    BAD_TOKEN,
    FUTURE,
    GARBAGE,
    INVALID_UTF8,
    JSON,
    MALFORMED,
    MESSAGES_PATH,
    NOT_ACCEPTED,
    ODD_NAMES,
    OPERATOR,
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
    Case,
    Ctx,
    any_sender,
    json_bytes,
    make_case,
    valid_json,
    valid_message,
    valid_target,
)

WRONG_TYPES = ("text/plain", JSON, "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
               "application/octet-stream", "text/html", "image/png")  # fmt: skip


def k_oversized(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    if ctx.rng.random() < 0.5:
        path, body, ct = MESSAGES_PATH.format(scheme=s.scheme), valid_message(ctx, s)[:-20], XML
    else:
        path, body, ct = "/v1/transfers", b'{"msg_id":"', JSON
    return make_case(ctx, "http.oversized", path=path, body=body, content_type=ct, auth=SIGNED,
                 signer=s.id, expect=frozenset({REFUSED}), status=413,
                 stream_bytes=OVERSIZED_BYTES, chunked=ctx.rng.random() < 0.5)  # fmt: skip


def k_wrong_content_type(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    if ctx.rng.random() < 0.5:
        path, body = MESSAGES_PATH.format(scheme=s.scheme), valid_message(ctx, s)
        ct = ctx.rng.choice([t for t in WRONG_TYPES if t != XML])
    else:
        path, body = "/v1/transfers", json_bytes(valid_json(ctx, s))
        ct = ctx.rng.choice([XML, "text/xml", *[t for t in WRONG_TYPES if t != JSON]])
    return make_case(ctx, "http.wrong-content-type", path=path, body=body, content_type=ct, auth=SIGNED,
                 signer=s.id, expect=frozenset({REFUSED}), status=415)  # fmt: skip


def k_wrong_method(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    method, path = ctx.rng.choice([
        ("GET", MESSAGES_PATH.format(scheme=s.scheme)), ("PUT", "/v1/transfers"),
        ("DELETE", "/v1/transfers"), ("PATCH", "/v1/positions"), ("DELETE", "/v1/participants/me"),
        ("PUT", MESSAGES_PATH.format(scheme=s.scheme)), ("POST", "/v1/positions"),
    ])  # fmt: skip
    return make_case(ctx, "http.wrong-method", method=method, path=path, body=b"", content_type=None,
                 auth=SIGNED, signer=s.id, expect=frozenset({REFUSED}), status=405)  # fmt: skip


def k_wrong_scheme(ctx: Ctx) -> Case:
    """A valid message posted under another scheme than the signer's, or an unknown one."""
    s = any_sender(ctx)
    other = ctx.rng.choice([x for x in SCHEMES if x != s.scheme])
    scheme, status = ctx.rng.choice(
        [(other, 403), ("xx-fps", 404), ("HK-FPS", 404), ("%2E%2E", 404)]
    )
    return make_case(ctx, "http.wrong-scheme", path=MESSAGES_PATH.format(scheme=scheme),
                 body=valid_message(ctx, s), content_type=XML, auth=SIGNED, signer=s.id,
                 expect=frozenset({REFUSED}), status=status)  # fmt: skip


def k_bad_path(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    path = ctx.rng.choice([
        "/v1/transfers/" + "9" * ctx.rng.choice([65, 1_000, 4_000]), "/v1/transfers/%00",
        "/v1/transfers/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/v1/transfers/%27%20OR%201%3D1--",
        "/v1/transfers/%ED%A0%80", "/v1/transfers/%FF%FE", "/v1//transfers", "/v1/nope",
        "/v1/schemes/hk-fps/messages/extra", "/v1/transfers/x%0d%0aSet-Cookie:%20a=b",
        "/v1/transfers/%E4%BD%A0%E5%A5%BD", "/v1/transfers/a;b=c",
    ])  # fmt: skip
    return make_case(ctx, "http.bad-path", method="GET", path=path, body=b"", content_type=None,
                 auth=SIGNED, signer=s.id, expect=frozenset({REFUSED}))  # fmt: skip


def k_header_abuse(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    method, path, body, ct = valid_target(ctx, s)
    headers = ctx.rng.choice(
        [
            (("X-Request-Id", "r" * 9_000),),
            (("X-Padding", "p" * 20_000),),
            tuple((f"X-Many-{i}", "v") for i in range(200)),
        ]
    )
    return make_case(ctx, "http.header-abuse", method=method, path=path, body=body, content_type=ct,
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
        s = any_sender(ctx)
        method, path, body, ct = valid_target(ctx, s)
        if auth == TAMPERED_BODY and not body:
            method, path, body, ct = "POST", "/v1/transfers", json_bytes(valid_json(ctx, s)), JSON
        if auth == UNCOVERED_TYPE and ct is None:
            method, body, ct = "POST", b"{}", JSON
        headers = ctx.rng.choice(MALFORMED_HEADERS) if auth == MALFORMED else ()
        alt = ctx.other(s).id if auth == WRONG_KEY else None
        return make_case(ctx, f"sig.{auth}", method=method, path=path, body=body, content_type=ct,
                     auth=auth, signer=s.id, alt_signer=alt, headers=headers,
                     expect=frozenset({REFUSED}), status=401)  # fmt: skip

    return build


def k_operator_auth(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    method, path, body = ctx.rng.choice([
        ("POST", "/v1/operator/windows/close", b""),
        ("PUT", f"/v1/operator/limits/{s.id}/HKD", b'{"net_debit_cap":"99999999.00","liquidity_cover":"99999999.00"}'),
        ("PATCH", f"/v1/operator/participants/{s.id}", b'{"status":"suspended"}'),
        ("POST", "/v1/operator/settlements/1/abort", b""),
    ])  # fmt: skip
    auth = ctx.rng.choice([UNSIGNED, BAD_TOKEN, SIGNED])
    return make_case(ctx, "op.no-token", method=method, path=path, body=body,
                 content_type=JSON if body else None, auth=auth, signer=s.id,
                 expect=frozenset({REFUSED}), status=401)  # fmt: skip


def k_operator_bad_input(ctx: Ctx) -> Case:
    """The right token, requests that must change nothing: every body or id is invalid."""
    s = any_sender(ctx)
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
        return make_case(ctx, "op.bad-input", method=method, path=path, body=body, content_type=JSON,
                     auth=BAD_TOKEN, expect=expect, status=401)  # fmt: skip
    return make_case(ctx, "op.bad-input", method=method, path=path, body=body,
                 content_type=JSON if body else None, auth=OPERATOR, expect=expect)  # fmt: skip


def _jsonmake_case(ctx: Ctx, kind: str, s: sm.Sender, body: bytes, expect: frozenset[str],
               path: str = "/v1/transfers") -> Case:  # fmt: skip
    return make_case(
        ctx, kind, path=path, body=body, content_type=JSON, auth=SIGNED, signer=s.id, expect=expect
    )


def k_json_malformed(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    good = json_bytes(valid_json(ctx, s))
    bad = ctx.rng.choice(INVALID_UTF8)
    body = ctx.rng.choice([
        b"{", b"[]", b"null", b'"x"', b"1e400", b"", good + b"garbage", good[:-1],
        b"\xef\xbb\xbf" + good, good.replace(b'"name":"', b'"name":"' + bad, 1),
        good.replace(b'"amount":"', b'"amount":NaN,"x":"', 1),
        good.replace(b'"currency":', b'"amount":-1,"currency":', 1), good.replace(b"{", b"{{", 1),
        good.replace(b'"', b"'"), b"\x00" * 64,
    ])  # fmt: skip
    return _jsonmake_case(ctx, "json.malformed", s, body, frozenset({REFUSED}))


def k_json_deep(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    depth = ctx.rng.choice([300, 10_000, 500_000])
    body = ctx.rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth])
    if ctx.rng.random() < 0.5:  # nested inside a real field
        obj = valid_json(ctx, s)
        body = json_bytes(obj).replace(b'"creditor":{', b'"creditor":{"x":' + body + b",", 1)
    return _jsonmake_case(ctx, "json.deep", s, body, frozenset({REFUSED}))


def k_json_types(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    obj = valid_json(ctx, s)
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
    return _jsonmake_case(ctx, "json.wrong-types", s, json_bytes(obj), expect)


def k_json_amount(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    obj = valid_json(ctx, s)
    obj["amount"] = ctx.rng.choice([*BAD_AMOUNTS, "9999999999999.99", "0.001"])
    if ctx.rng.random() < 0.3:
        obj["currency"] = ctx.rng.choice(["XXX", "JPY", "EUR", "ABC"])
    return _jsonmake_case(ctx, "json.bad-amount", s, json_bytes(obj), NOT_ACCEPTED)


def k_json_nul(ctx: Ctx) -> Case:
    """U+0000 in a string: valid JSON, but no text column can hold it."""
    s = any_sender(ctx)
    obj = valid_json(ctx, s)
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
    return _jsonmake_case(ctx, "json.nul", s, json_bytes(obj), frozenset({REFUSED}))


def k_json_sql(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    obj = valid_json(ctx, s)
    obj[ctx.rng.choice(["debtor", "creditor"])]["name"] = ctx.rng.choice(SQL_NAMES)
    obj["remittance_info"] = ctx.rng.choice(SQL_NAMES)
    return _jsonmake_case(
        ctx, "json.sql-names", s, json_bytes(obj), frozenset({ACCEPTED, REJECTED})
    )


def k_json_odd(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    obj = valid_json(ctx, s)
    obj["creditor"]["name"] = ctx.rng.choice(
        [*ODD_NAMES, "a\u0001b", "esc\u001b[2J", "del\u007f", "bad\ufffe"]
    )
    return _jsonmake_case(ctx, "json.odd-names", s, json_bytes(obj), ANY)


def k_json_long(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    obj = valid_json(ctx, s)
    size = ctx.rng.choice([141, 10_000, 1_000_000])
    obj[ctx.rng.choice(["debtor", "creditor"])]["name"] = "N" * size
    return _jsonmake_case(ctx, "json.long-strings", s, json_bytes(obj), frozenset({REFUSED}))


def k_json_quote(ctx: Ctx) -> Case:
    s = any_sender(ctx)
    if ctx.rng.random() < 0.5:
        obj = valid_json(ctx, s)
        # An unknown quote refuses a conversion; a same-currency payment needs none (ANY).
        obj["quote_id"] = ctx.rng.choice(["no-such-quote", "' OR 1=1 --", "x" * 64, "../../etc"])
        return _jsonmake_case(ctx, "json.bad-quote", s, json_bytes(obj), ANY)
    body = ctx.rng.choice([
        b'{"source_currency":"HKD","target_currency":"HKD"}', b'{"source_currency":"XXX","target_currency":"CNY"}',
        b'{"source_currency":"hkd","target_currency":"CNY"}', b'{"source_currency":"HKD"}', b"{}",
        b'{"source_currency":"HKD","target_currency":"CNY","rate":"9"}',
    ])  # fmt: skip
    return _jsonmake_case(ctx, "json.bad-quote", s, body, frozenset({REFUSED}), path="/v1/quotes")


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
    return make_case(ctx, "http.raw", method="RAW", path=p.decode(), body=body, content_type=None,
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
