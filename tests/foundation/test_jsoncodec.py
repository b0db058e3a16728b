"""The hashed and stored JSON encodings are the standard library's, byte for byte: a transfer's
idempotency hash and an audit record's hash come out the same whichever encoder made them,
so replays and chain verification agree across versions."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import audit, jsoncodec, transfer_json
from tests.adapters.helpers import transfers

STD_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
STD_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# Any Unicode but lone surrogates (which no UTF-8 text, hence no stored or hashed one, holds).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_encodings_are_the_standard_librarys(value: object) -> None:
    assert jsoncodec.canonical(value) == STD_CANONICAL.encode(value)
    assert jsoncodec.compact(value) == STD_COMPACT.encode(value)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["hk-fps", "cn-ibps", "mo-fps"]).flatmap(transfers))
def test_a_transfers_hash_and_stored_form_do_not_depend_on_the_encoder(t) -> None:
    d = transfer_json.to_dict(t)
    hashed = {k: v for k, v in d.items() if k not in ("id", "msg_id", "created_at", "destination_scheme")}
    std = STD_CANONICAL.encode(hashed)
    assert transfer_json.payload(t) == (std, hashlib.sha256(std.encode()).hexdigest())
    assert transfer_json.dumps(t) == STD_COMPACT.encode(d)
    assert transfer_json.loads(transfer_json.dumps(t)) == t


@pytest.mark.parametrize("value", [{"n": 2**64}, {1: "int key"}, [2**80, "big"]])
def test_what_orjson_refuses_gets_the_standard_answer(value: object) -> None:
    assert jsoncodec.canonical(value) == STD_CANONICAL.encode(value)
    assert jsoncodec.compact(value) == STD_COMPACT.encode(value)


def test_an_audit_record_hashes_as_before() -> None:
    data = {"state": "COMMITTED", "amount": {"minor": 12_345, "currency": "HKD"}, "note": "陳\n\"x\""}
    assert audit.canonical_json(data) == STD_CANONICAL.encode(data)
