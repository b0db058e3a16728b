"""Signing and verifying requests: what a participant's request must carry to be accepted."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import statistics
import time

import pytest
from http_message_signatures import ContentDigest, HTTPMessageSigner, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import AuthError, Verifier, _Message, _OneKey

from .support import NOW, Clock, Participant, Request, kind, refusal, run, signed, verifier_for

BANK_A = Participant("bank-a")
BANK_B = Participant("bank-b")

_SEGMENT = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=12)
_PATHS = st.lists(_SEGMENT, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
_QUERIES = st.none() | st.lists(st.tuples(_SEGMENT, _SEGMENT), max_size=3).map(
    lambda kv: "&".join(f"{k}={v}" for k, v in kv)
)
_CONTENT_TYPES = st.none() | st.sampled_from(
    ["application/json", "application/xml", "text/plain; charset=utf-8"]
)
_METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])


@st.composite
def signed_requests(draw: st.DrawFn) -> Request:
    method, path, query = draw(_METHODS), draw(_PATHS), draw(_QUERIES)
    ctype, body = draw(_CONTENT_TYPES), draw(st.binary(max_size=2048))
    created = NOW + draw(st.integers(-305, 5))
    target = path if query is None else f"{path}?{query}"
    headers = {} if ctype is None else {"Content-Type": ctype}
    return signed(BANK_A, method, target, body, headers, created)


@settings(max_examples=80, deadline=None)
@given(signed_requests())
def test_a_signed_request_is_accepted_as_its_signer(req: Request) -> None:
    assert req.verify_with(verifier_for(BANK_A)) == "bank-a"


def _tamper(req: Request, what: str) -> Request:
    headers = dict(req.headers)
    if what == "method":
        return Request("PUT" if req.method != "PUT" else "POST", req.path_qs, headers, req.body)
    if what == "path":
        path, sep, query = req.path_qs.partition("?")
        return Request(req.method, path + "x" + sep + query, headers, req.body)
    if what == "query":
        target = req.path_qs + ("&z=1" if "?" in req.path_qs else "?z=1")
        return Request(req.method, target, headers, req.body)
    if what == "body":
        return Request(req.method, req.path_qs, headers, req.body + b" ")
    assert what == "content-type"
    if "Content-Type" in headers:
        headers["Content-Type"] += "x"
    else:
        headers["Content-Type"] = "application/json"
    return Request(req.method, req.path_qs, headers, req.body)


# A changed covered value breaks the signature; a changed body breaks the digest first; a
# component the request now has but the signature does not cover is refused as uncovered.
_EXPECTED = {
    "method": {"signature-invalid"},
    "path": {"signature-invalid"},
    "query": {"signature-invalid", "signature-coverage"},
    "body": {"content-digest-mismatch"},
    "content-type": {"signature-invalid", "signature-coverage"},
}


@settings(max_examples=80, deadline=None)
@given(signed_requests(), st.sampled_from(sorted(_EXPECTED)))
def test_any_change_to_a_signed_request_is_refused(req: Request, what: str) -> None:
    err = refusal(verifier_for(BANK_A), _tamper(req, what))
    assert err.status == 401
    assert kind(err) in _EXPECTED[what], err.detail


def test_a_signature_made_with_another_key_is_refused() -> None:
    forged = Participant("bank-a", key=BANK_B.key)
    err = refusal(verifier_for(BANK_A, BANK_B), signed(forged))
    assert (err.status, kind(err)) == (401, "signature-invalid")


def test_an_unknown_key_id_is_refused() -> None:
    err = refusal(verifier_for(BANK_A), signed(Participant("bank-z")))
    assert (err.status, kind(err)) == (401, "key-unknown")
    assert "bank-z" in err.detail


@pytest.mark.parametrize(
    ("age_s", "skew_s", "accepted"),
    [(300, 0, True), (301, 0, False), (305, 5, True), (306, 5, False), (3600, 5, False)],
)
def test_signatures_older_than_max_age_are_refused(age_s: int, skew_s: int, accepted: bool) -> None:
    verifier = verifier_for(BANK_A, max_age_s=300, clock_skew_s=skew_s)
    req = signed(BANK_A, created=NOW - age_s)
    if accepted:
        assert req.verify_with(verifier) == "bank-a"
    else:
        err = refusal(verifier, req)
        assert (err.status, kind(err)) == (401, "signature-stale")


@pytest.mark.parametrize(("ahead_s", "accepted"), [(0, True), (5, True), (6, False), (600, False)])
def test_signatures_from_the_future_are_refused(ahead_s: int, accepted: bool) -> None:
    verifier = verifier_for(BANK_A, clock_skew_s=5)
    req = signed(BANK_A, created=NOW + ahead_s)
    if accepted:
        assert req.verify_with(verifier) == "bank-a"
    else:
        err = refusal(verifier, req)
        assert (err.status, kind(err)) == (401, "signature-future")


def test_time_comes_from_the_injected_clock() -> None:
    clock = Clock(NOW)
    verifier = verifier_for(BANK_A, clock=clock, clock_skew_s=0)
    req = signed(BANK_A, created=NOW)
    clock.now = NOW + 301
    assert kind(refusal(verifier, req)) == "signature-stale"
    clock.now = NOW - 1
    assert kind(refusal(verifier, req)) == "signature-future"
    clock.now = NOW + 300
    assert req.verify_with(verifier) == "bank-a"


def _sign_with_library(covered: tuple[str, ...], *, expires: int | None = None) -> Request:
    """A request signed by the library directly, to cover what sign_request would not."""
    body = b"{}"
    headers = {"Content-Type": "application/json", "Content-Digest": ContentDigest.create(body)}
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OneKey("bank-a", private=BANK_A.key)
    )
    signer.sign(
        _Message("POST", "https://gw.example/v1/transfers", headers),
        key_id="bank-a",
        created=dt.datetime.fromtimestamp(NOW, tz=dt.UTC),
        expires=None if expires is None else dt.datetime.fromtimestamp(expires, tz=dt.UTC),
        label="sig1",
        covered_component_ids=covered,
        use_existing_digest=True,
    )
    return Request("POST", "/v1/transfers", headers, body)


def test_an_expired_signature_is_refused_even_within_max_age() -> None:
    req = _sign_with_library(
        ("@method", "@path", "content-digest", "content-type"), expires=int(NOW) - 60
    )
    err = refusal(verifier_for(BANK_A), req)
    assert kind(err) == "signature-stale"


@pytest.mark.parametrize(
    "covered",
    [
        ("@method", "@path", "content-type"),  # no content-digest
        ("@method", "content-digest", "content-type"),  # no path
        ("@path", "content-digest", "content-type"),  # no method
        ("@method", "@path", "content-digest"),  # no content-type, yet the request has one
        ("@method", "@authority", "@path", "content-digest", "content-type"),  # not reproducible
    ],
)
def test_a_signature_must_cover_the_required_components(covered: tuple[str, ...]) -> None:
    err = refusal(verifier_for(BANK_A), _sign_with_library(covered))
    assert (err.status, kind(err)) == (401, "signature-coverage")


def test_the_library_signature_with_full_coverage_is_accepted() -> None:
    """Guards the coverage test above: the same construction with full coverage passes."""
    req = _sign_with_library(("@method", "@path", "content-digest", "content-type"))
    assert req.verify_with(verifier_for(BANK_A)) == "bank-a"


@pytest.mark.parametrize("header", ["Signature", "Signature-Input", "Content-Digest"])
def test_a_request_missing_a_signature_header_is_refused(header: str) -> None:
    req = signed(BANK_A)
    del req.headers[header]
    err = refusal(verifier_for(BANK_A), req)
    assert (err.status, kind(err)) == (401, "signature-missing")
    assert header in err.detail


def test_an_unsigned_request_is_refused() -> None:
    req = Request("POST", "/v1/transfers", {"Content-Type": "application/json"}, b"{}")
    assert kind(refusal(verifier_for(BANK_A), req)) == "signature-missing"


def test_header_names_are_case_insensitive() -> None:
    req = signed(BANK_A)
    lowered = Request(
        req.method, req.path_qs, {k.lower(): v for k, v in req.headers.items()}, req.body
    )
    assert lowered.verify_with(verifier_for(BANK_A)) == "bank-a"


def _edit_input(edit):  # type: ignore[no-untyped-def]
    def apply(req: Request) -> None:
        req.headers["Signature-Input"] = edit(req.headers["Signature-Input"])

    return apply


def _set(name: str, value: str):  # type: ignore[no-untyped-def]
    def apply(req: Request) -> None:
        req.headers[name] = value

    return apply


def _second_signature(req: Request) -> None:
    req.headers["Signature-Input"] += f', sig2=("@method");created={int(NOW)};keyid="bank-a"'
    req.headers["Signature"] += ", sig2=:AAAA:"


_CREATED = f";created={int(NOW)}"
MALFORMED = {
    "not a structured field": _set("Signature-Input", 'sig1=("@method" "@path"'),
    "not an inner list": _set("Signature-Input", 'sig1="@method"'),
    "no created": _edit_input(lambda v: v.replace(_CREATED, "")),
    "created not an integer": _edit_input(lambda v: v.replace(_CREATED, ';created="now"')),
    "no keyid": _edit_input(lambda v: v.replace(';keyid="bank-a"', "")),
    "keyid not a participant id": _edit_input(lambda v: v.replace('"bank-a"', '"Bank A"')),
    "other algorithm": _edit_input(lambda v: v.replace('"ed25519"', '"rsa-v1_5-sha256"')),
    "two signatures": _second_signature,
    "labels differ": _edit_input(lambda v: v.replace("sig1=", "sig9=")),
    "signature not bytes": _set("Signature", 'sig1="abc"'),
    "too long": _edit_input(lambda v: v.replace('"@method"', '"@method" ' + '"x-pad" ' * 600)),
    "too many components": _edit_input(
        lambda v: v.replace('"@method"', '"@method" ' + " ".join(f'"x-{i}"' for i in range(20)))
    ),
    "non-ascii": _edit_input(lambda v: v.replace('"bank-a"', '"bänk-a"')),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_signature_is_refused(case: str) -> None:
    req = signed(BANK_A)
    MALFORMED[case](req)
    err = refusal(verifier_for(BANK_A), req)
    assert (err.status, kind(err)) == (401, "signature-malformed"), err.detail


@pytest.mark.parametrize(
    "digest", ["sha-256=:AAAA:", "sha-256=abc", "md5=:1B2M2Y8AsgTpgAmY7PhCfg==:", ""]
)
def test_a_malformed_content_digest_is_refused(digest: str) -> None:
    req = signed(BANK_A)
    req.headers["Content-Digest"] = digest
    err = refusal(verifier_for(BANK_A), req)
    assert (err.status, kind(err)) == (401, "content-digest-mismatch")


def test_a_replayed_request_is_refused() -> None:
    clock = Clock(NOW)
    verifier = verifier_for(BANK_A, clock=clock)
    req = signed(BANK_A)
    assert req.verify_with(verifier) == "bank-a"
    clock.now += 200
    err = refusal(verifier, req)
    assert (err.status, kind(err)) == (401, "signature-replayed")
    clock.now = NOW + 300 + 5 + 1
    assert kind(refusal(verifier, req)) == "signature-stale"


def test_a_replay_under_another_label_is_refused() -> None:
    verifier = verifier_for(BANK_A)
    req = signed(BANK_A)
    assert req.verify_with(verifier) == "bank-a"
    for name in ("Signature-Input", "Signature"):
        req.headers[name] = req.headers[name].replace("sig1=", "other=")
    assert kind(refusal(verifier, req)) == "signature-replayed"


def test_the_same_request_twice_at_once_is_accepted_once() -> None:
    class SlowResolver:
        async def public_key(self, key_id: str):  # type: ignore[no-untyped-def]
            for _ in range(3):
                await asyncio.sleep(0)
            return BANK_A.key.public_key() if key_id == "bank-a" else None

    verifier = Verifier(SlowResolver(), clock=Clock())
    req = signed(BANK_A)

    async def both() -> list[object]:
        calls = [verifier.verify(req.method, req.path_qs, req.headers, req.body) for _ in range(2)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = run(both())
    assert results.count("bank-a") == 1
    errors = [r for r in results if isinstance(r, AuthError)]
    assert [kind(e) for e in errors] == ["signature-replayed"]


def test_when_the_replay_memory_is_full_requests_are_refused_until_entries_expire() -> None:
    clock = Clock(NOW)
    verifier = verifier_for(BANK_A, clock=clock, replay_cache_max=2, max_age_s=300, clock_skew_s=5)
    for i in range(2):
        assert signed(BANK_A, body=b"%d" % i).verify_with(verifier) == "bank-a"
    third = signed(BANK_A, body=b"third")
    err = refusal(verifier, third)
    assert err.status == 503
    assert err.headers() == {"Retry-After": "1"}
    assert len(verifier.replay_cache) == 2
    clock.now = NOW + 305 + 1
    fresh = signed(BANK_A, body=b"third", created=clock.now)
    assert fresh.verify_with(verifier) == "bank-a"
    assert len(verifier.replay_cache) == 1


def test_refusals_are_problem_documents() -> None:
    err = refusal(verifier_for(BANK_A), signed(Participant("bank-z")))
    problem = err.problem()
    assert problem["status"] == 401
    assert problem["type"].startswith("urn:baygate:problem:")
    assert problem["title"] and problem["detail"]


def test_verify_cost_per_request_is_reported() -> None:
    """Each of many distinct requests is accepted once; prints the median verify cost."""
    verifier = verifier_for(BANK_A)
    requests = [signed(BANK_A, body=b'{"n":%d}' % i) for i in range(300)]

    async def verify_all() -> tuple[list[str], list[float]]:
        who, costs = [], []
        for req in requests:
            started = time.perf_counter()
            who.append(await verifier.verify(req.method, req.path_qs, req.headers, req.body))
            costs.append(time.perf_counter() - started)
        return who, costs

    who, costs = run(verify_all())
    assert who == ["bank-a"] * len(requests)
    assert all(kind(refusal(verifier, r)) == "signature-replayed" for r in requests[:10])
    print(
        f"\nverify cost per request: median {statistics.median(costs) * 1e6:.0f} us over {len(costs)}"
    )


def test_a_replay_with_a_malleated_signature_is_refused() -> None:
    """S + L is the same Ed25519 signature in a different encoding: it must not pass as new."""
    verifier = verifier_for(BANK_A)
    req = signed(BANK_A)
    assert req.verify_with(verifier) == "bank-a"
    label, _, value = req.headers["Signature"].partition("=")
    sig = base64.b64decode(value.strip(":"))
    order = 2**252 + 27742317777372353535851937790883648493
    s_plus_l = int.from_bytes(sig[32:], "little") + order
    twin = sig[:32] + s_plus_l.to_bytes(32, "little")
    req.headers["Signature"] = f"{label}=:{base64.b64encode(twin).decode()}:"
    err = refusal(verifier, req)
    assert kind(err) == "signature-invalid"


_HEADER_NAMES = st.sampled_from(["Signature-Input", "Signature", "Content-Digest", "Content-Type"])
_FIELD_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300
) | st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    signed_requests(),
    st.lists(st.tuples(_HEADER_NAMES, _FIELD_TEXT), max_size=3),
    st.one_of(st.none(), st.text(max_size=40)),
)
def test_whatever_arrives_the_answer_is_accept_or_auth_error(
    req: Request, edits: list[tuple[str, str]], target: str | None
) -> None:
    """Fuzzed signature headers and targets: never an exception other than AuthError."""
    for name, value in edits:
        req.headers[name] = value
    if target is not None:
        req.path_qs = target
    try:
        assert req.verify_with(verifier_for(BANK_A)) == "bank-a"
    except AuthError as exc:
        assert exc.status == 401


@settings(max_examples=300, deadline=None)
@given(signed_requests(), _HEADER_NAMES, st.data())
def test_spliced_signature_headers_are_accepted_or_refused_cleanly(
    req: Request, name: str, data: st.DataObject
) -> None:
    """Near-valid headers (a valid value with a few characters cut or inserted)."""
    value = req.headers.get(name, "")
    at = data.draw(st.integers(0, len(value)))
    cut = data.draw(st.integers(0, 4))
    insert = data.draw(st.text(st.sampled_from('();=:",*a1 -@\\'), max_size=4))
    req.headers[name] = value[:at] + insert + value[at + cut :]
    try:
        assert req.verify_with(verifier_for(BANK_A)) == "bank-a"
    except AuthError as exc:
        assert exc.status == 401
