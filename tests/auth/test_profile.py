"""Baygate's own signature profile, signed and verified without the library, against it.

The library (http-message-signatures) is the oracle: what the profile code signs, the
library must accept and would have written byte for byte; what the library signs in the
profile, the profile code must accept; and for any request, changed or not, the profile
verifier and the library-only verifier must give the same answer.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from http_message_signatures import ContentDigest, HTTPMessageSigner, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import auth
from gateway.auth import AuthError, _ClockedVerifier, _Message, _OneKey, sign_request

from .support import NOW, Participant, Request, kind, refusal, signed, verifier_for

BANK_A = Participant("bank-a")
ORIGIN = "https://gw.example"

_SEGMENT = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-._~%20!$&'()*+,;=:@", max_size=12)
_PATHS = st.lists(_SEGMENT, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
_QUERIES = st.none() | st.text("abcxyz0123456789-._~=&/?:@%2F", max_size=20)
_CONTENT_TYPES = st.none() | st.sampled_from(
    ["application/json", "application/xml", "text/plain; charset=utf-8", 'a/b ; q="1"']
)
_METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
_NONCES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'))
_KEY_IDS = st.from_regex(r"[a-z0-9][a-z0-9._-]{1,20}", fullmatch=True)


def _valid_target(path: str, query: str | None) -> bool:
    return auth._TARGET_RE.fullmatch(path if query is None else f"{path}?{query}") is not None


@st.composite
def requests(draw: st.DrawFn) -> tuple[Request, str, str]:
    """A request of the profile: (request, key id, nonce), not yet signed."""
    path, query = draw(_PATHS), draw(_QUERIES)
    if not _valid_target(path, query):
        path, query = "/v1/transfers", None
    target = path if query is None else f"{path}?{query}"
    ctype = draw(_CONTENT_TYPES)
    headers = {} if ctype is None else {"Content-Type": ctype}
    req = Request(draw(_METHODS), target, headers, draw(st.binary(max_size=512)))
    return req, draw(_KEY_IDS), draw(_NONCES)


def _library_sign(req: Request, key_id: str, nonce: str, created: float) -> dict[str, str]:
    out = dict(req.headers)
    covered = ["@method", "@path"] + (["@query"] if "?" in req.path_qs else [])
    covered += ["content-digest"] + (["content-type"] if "Content-Type" in out else [])
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key_id, private=BANK_A.key)
    ).sign(
        _Message(req.method, ORIGIN + req.path_qs, out),
        key_id=key_id,
        created=dt.datetime.fromtimestamp(created, tz=dt.UTC),
        label="sig1",
        covered_component_ids=covered,
        nonce=nonce,
        body=req.body,
        use_existing_digest=True,
    )
    return out


def _library_accepts(req: Request, key_id: str) -> None:
    """Raises unless the library verifies the signature and the digest (time not checked)."""
    verifier = _ClockedVerifier(
        lambda _params: None,
        signature_algorithm=algorithms.ED25519,
        key_resolver=_OneKey(key_id, public=BANK_A.key.public_key()),
    )
    verifier.verify(_Message(req.method, ORIGIN + req.path_qs, req.headers), max_age=None)
    ContentDigest.verify(req.headers["Content-Digest"], req.body)


def _in_profile(req: Request) -> bool:
    fields = auth._header_fields(req.headers)
    return auth._parse_signature(fields, req.method, req.path_qs).base is not None


@settings(max_examples=150, deadline=None)
@given(requests(), st.sampled_from(["", ORIGIN, "http://127.0.0.1:8081"]))
def test_the_profile_signer_writes_what_the_library_writes(
    drawn: tuple[Request, str, str], origin: str
) -> None:
    req, key_id, nonce = drawn
    ours = sign_request(
        req.method, origin + req.path_qs, req.headers, req.body, key_id, BANK_A.key, NOW, nonce
    )
    assert ours == _library_sign(req, key_id, nonce, NOW)
    _library_accepts(Request(req.method, req.path_qs, ours, req.body), key_id)


@settings(max_examples=150, deadline=None)
@given(requests())
def test_what_the_library_signs_the_profile_verifier_accepts(
    drawn: tuple[Request, str, str],
) -> None:
    req, _key_id, nonce = drawn
    req.headers = _library_sign(req, "bank-a", nonce, NOW)
    assert _in_profile(req)
    assert req.verify_with(verifier_for(BANK_A)) == "bank-a"


def _tamper_text(text: str, at: int, char: str) -> str:
    at %= max(len(text), 1)
    replacement = char if text[at : at + 1] != char else ("A" if char != "A" else "B")
    return text[:at] + replacement + text[at + 1 :]


_PARTS = ["body", "path", "method", "Signature-Input", "Signature", "Content-Digest"]


@settings(max_examples=400, deadline=None)
@given(
    requests(),
    st.sampled_from([*_PARTS, "Content-Type"]),
    st.integers(0, 10_000),
    st.characters(min_codepoint=0x09, max_codepoint=0x7E) | st.sampled_from(["\u00e9", "\x00"]),
)
def test_any_single_character_change_is_refused_by_both_verifiers(
    drawn: tuple[Request, str, str], part: str, at: int, char: str
) -> None:
    req, _key_id, nonce = drawn
    headers = sign_request(
        req.method, req.path_qs, req.headers, req.body, "bank-a", BANK_A.key, NOW, nonce
    )
    assert Request(req.method, req.path_qs, headers, req.body).verify_with(verifier_for(BANK_A))
    method, target, body = req.method, req.path_qs, req.body
    if part == "body":
        i = at % (len(body) + 1)
        body = body[:i] + bytes([(body[i] + 1) % 256 if i < len(body) else 0]) + body[i + 1 :]
    elif part == "path":
        target = _tamper_text(target, at, char)
    elif part == "method":
        method = _tamper_text(method, at, char)
    elif part in headers:
        headers[part] = _tamper_text(headers[part], at, char)
    else:
        headers[part] = char
    changed = Request(method, target, headers, body)
    answers = []
    for library_only in (False, True):
        err = refusal(verifier_for(BANK_A, library_only=library_only), changed)
        assert err.status == 401
        answers.append(kind(err))
    assert answers[0] == answers[1]


_FIELD_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


@settings(max_examples=300, deadline=None)
@given(requests(), st.lists(st.tuples(st.sampled_from(_PARTS[3:]), _FIELD_TEXT), max_size=2))
def test_the_profile_and_the_library_give_the_same_answer(
    drawn: tuple[Request, str, str], edits: list[tuple[str, str]]
) -> None:
    req, _key_id, nonce = drawn
    req.headers = _library_sign(req, "bank-a", nonce, NOW)
    for name, value in edits:
        req.headers[name] = value
    answers: list[str] = []
    for library_only in (False, True):
        try:
            answers.append(req.verify_with(verifier_for(BANK_A, library_only=library_only)))
        except AuthError as exc:
            assert exc.status == 401
            answers.append(kind(exc))
    assert answers[0] == answers[1]


def _with_input(req: Request, value: str) -> Request:
    req.headers["Signature-Input"] = value
    return req


def _resigned_params(params: str) -> Request:
    """A request whose Signature-Input carries `params`, signed over exactly that text."""
    req = signed(BANK_A)
    components = '("@method" "@path" "content-digest" "content-type")'
    base = auth._signature_base(
        "POST",
        "/v1/transfers",
        None,
        req.headers["Content-Digest"],
        "application/json",
        components + params,
    )
    sig = base64.b64encode(BANK_A.key.sign(base)).decode()
    req.headers["Signature-Input"] = "sig1=" + components + params
    req.headers["Signature"] = f"sig1=:{sig}:"
    return req


_KEYID = ';keyid="bank-a"'
_CREATED = f";created={int(NOW)}"


def test_a_request_signed_over_the_profile_base_is_accepted() -> None:
    """Guards the refusals below: the same construction without the defect passes."""
    req = _resigned_params(_CREATED + _KEYID + ';nonce="n1"')
    assert _in_profile(req)
    assert req.verify_with(verifier_for(BANK_A)) == "bank-a"


@pytest.mark.parametrize(
    "params",
    [
        _CREATED + _KEYID + _CREATED,  # created twice, same value
        _CREATED + _KEYID + f";created={int(NOW) + 1}",
        _CREATED + _KEYID + ';keyid="bank-b"',
        _CREATED + _KEYID + ';nonce="a";nonce="b"',
        _CREATED + _KEYID + ';alg="ed25519";alg="ed25519"',
    ],
)
def test_a_parameter_given_twice_is_refused(params: str) -> None:
    err = refusal(verifier_for(BANK_A), _resigned_params(params))
    assert (err.status, kind(err)) == (401, "signature-malformed"), err.detail


def test_a_parameter_given_twice_is_refused_outside_the_profile_too() -> None:
    """Unusual spacing takes the request out of the profile; the refusal stays."""
    req = signed(BANK_A)
    value = req.headers["Signature-Input"].replace(";", "; ", 1) + ';nonce="again"'
    err = refusal(verifier_for(BANK_A), _with_input(req, value))
    assert (err.status, kind(err)) == (401, "signature-malformed"), err.detail


def _sig_text(req: Request) -> str:
    return req.headers["Signature"].removeprefix("sig1=:").removesuffix(":")


@pytest.mark.parametrize(
    "edit",
    [
        lambda b64: b64.rstrip("="),  # unpadded
        lambda b64: b64[:-3] + chr(ord(b64[-3]) ^ 1) + "==",  # stray bits after the last byte
        lambda b64: b64[:40] + "-" + b64[41:],  # base64url alphabet
        lambda b64: b64[:40] + " " + b64[40:],
        lambda b64: b64 + "=",
    ],
)
def test_a_signature_not_in_canonical_base64_is_refused(edit) -> None:  # type: ignore[no-untyped-def]
    req = signed(BANK_A)
    b64 = _sig_text(req)
    req.headers["Signature"] = f"sig1=:{edit(b64)}:"
    err = refusal(verifier_for(BANK_A), req)
    assert (err.status, kind(err)) == (401, "signature-malformed"), err.detail


@pytest.mark.parametrize(
    "value",
    [
        "sig1=:{b}:, sig2=:{b}:",
        "sig1=:{b}:;x",
        "sig1=:{b}:, sig1=:{b}:",
        "sig1=(:{b}:)",
    ],
)
def test_a_signature_field_with_anything_but_one_byte_sequence_is_refused(value: str) -> None:
    req = signed(BANK_A)
    req.headers["Signature"] = value.format(b=_sig_text(req))
    err = refusal(verifier_for(BANK_A), req)
    assert (err.status, kind(err)) == (401, "signature-malformed"), err.detail


def test_the_method_is_verified_as_sent() -> None:
    req = signed(BANK_A)
    lowered = Request("post", req.path_qs, req.headers, req.body)
    assert kind(refusal(verifier_for(BANK_A), lowered)) == "signature-invalid"


def test_a_resend_with_the_same_nonce_is_a_replay_and_a_fresh_nonce_is_not() -> None:
    verifier = verifier_for(BANK_A)
    headers = {"Content-Type": "application/json"}

    def send(nonce: str) -> Request:
        signed_headers = sign_request(
            "POST", "/v1/transfers", headers, b"{}", "bank-a", BANK_A.key, NOW, nonce
        )
        return Request("POST", "/v1/transfers", signed_headers, b"{}")

    assert send("n-1").verify_with(verifier) == "bank-a"
    assert kind(refusal(verifier, send("n-1"))) == "signature-replayed"
    assert send("n-2").verify_with(verifier) == "bank-a"


def test_requests_outside_the_profile_are_verified_by_the_library() -> None:
    """An extra covered header takes the library path, and is accepted when it verifies."""
    req = Request("POST", "/v1/transfers", {"Content-Type": "application/json", "X-Id": "7"}, b"")
    out = dict(req.headers)
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OneKey("bank-a", private=BANK_A.key)
    ).sign(
        _Message("POST", ORIGIN + req.path_qs, out),
        key_id="bank-a",
        created=dt.datetime.fromtimestamp(NOW, tz=dt.UTC),
        label="sig1",
        covered_component_ids=["@method", "@path", "content-digest", "content-type", "x-id"],
        body=b"",
        use_existing_digest=True,
    )
    req.headers = out
    assert not _in_profile(req)
    assert req.verify_with(verifier_for(BANK_A)) == "bank-a"
    req.headers["X-Id"] = "8"
    assert kind(refusal(verifier_for(BANK_A), req)) == "signature-invalid"
