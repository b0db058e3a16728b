"""The hash chain without a database: encoding against the reference model, event checks,
and the checker that `verify` runs, fed tampered chains."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.model import TransferState
from gateway.audit import (
    DATA_BYTES_MAX,
    AuditError,
    AuditEvent,
    ChainChecker,
    ChainHead,
    record_hash,
)
from tests.audit.reference import GENESIS, events, reference_chain, reference_hash

AT = datetime(2025, 7, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=8)))


@settings(max_examples=300, deadline=None)
@given(events, st.integers(1, 2**40), st.binary(min_size=32, max_size=32))
def test_record_hash_is_sha256_of_the_sorted_compact_json_record(e, seq, prev) -> None:
    prev_hex = prev.hex()
    expected = reference_hash(seq, e.kind, e.subject, e.at, e.data, prev_hex)
    assert record_hash(seq, e.kind, e.subject, e.at, e.data_json, prev_hex) == expected


def test_the_same_instant_in_any_zone_hashes_alike_and_another_instant_does_not() -> None:
    utc = AT.astimezone(UTC)
    a = AuditEvent("transfer.state", "T1", AT, {"state": "RESERVED"})
    b = AuditEvent("transfer.state", "T1", utc, {"state": "RESERVED"})
    c = AuditEvent("transfer.state", "T1", utc + timedelta(microseconds=1), {"state": "RESERVED"})
    hashes = {record_hash(1, e.kind, e.subject, e.at, e.data_json, GENESIS) for e in (a, b, c)}
    assert len(hashes) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": {"amount": 12.5}}, "data.amount: float is not allowed"),
        ({"data": {"legs": [1, {"rate": 7.1}]}}, r"data.legs\[1\].rate: float"),
        ({"data": {"rate": __import__("decimal").Decimal("7.1")}}, "Decimal is not allowed"),
        ({"data": {"n": 2**63}}, "64-bit"),
        ({"data": {"s": "a\x00b"}}, "NUL"),
        ({"data": {"s": "\ud800"}}, "surrogate"),
        ({"data": {1: "x"}}, "expected a string"),
        ({"data": {"big": "x" * DATA_BYTES_MAX}}, "exceeds"),
        ({"data": {"deep": json.loads("[" * 20 + "]" * 20)}}, "deeper"),
        ({"at": datetime(2025, 7, 1, 9, 30)}, "timezone-aware"),
        ({"kind": "Transfer State"}, "look like"),
        ({"kind": "transfer"}, "look like"),
        ({"kind": "transfer.state\n"}, "look like"),
        ({"at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=8)))}, "out of range"),
        ({"subject": ""}, "1 to 128"),
        ({"subject": "x" * 129}, "1 to 128"),
    ],
)
def test_events_that_would_not_survive_the_round_trip_are_refused(kwargs, message) -> None:
    base = {"kind": "transfer.state", "subject": "T1", "at": AT, "data": {}}
    with pytest.raises(AuditError, match=message):
        AuditEvent(**(base | kwargs))


def test_enum_states_are_journaled_as_their_codes() -> None:
    e = AuditEvent("transfer.state", "T1", AT, {"state": TransferState.RESERVED, "n": 3})
    assert e.data_json == '{"n":3,"state":"RESERVED"}'


def test_data_is_captured_when_the_event_is_made() -> None:
    data = {"state": "RESERVED"}
    e = AuditEvent("transfer.state", "T1", AT, data)
    data["state"] = "COMMITTED"
    assert json.loads(e.data_json) == {"state": "RESERVED"}


def test_chain_head_text_round_trips_and_rejects_garbage() -> None:
    h = ChainHead(42, "ab" * 32)
    assert ChainHead.parse(str(h)) == h
    for bad in [
        "42",
        "x:" + "ab" * 32,
        "42:" + "AB" * 32,
        "42:abc",
        "42\n:" + "ab" * 32,
        "-1:" + "ab" * 32,
        "²:" + "ab" * 32,
    ]:
        with pytest.raises(ValueError):
            ChainHead.parse(bad)


# ---- the checker against tampered chains -------------------------------------------------


def _check(records: list[dict], head: ChainHead, anchors=()):
    checker = ChainChecker(head, anchors)
    for r in records:
        checker.feed(
            r["seq"], r["prev_hash"], r["hash"], r["kind"], r["subject"], r["at"], r["data"]
        )
    return checker.finish()


def _head(records: list[dict]) -> ChainHead:
    return ChainHead(records[-1]["seq"], records[-1]["hash"]) if records else ChainHead(0, GENESIS)


def _rehash(r: dict) -> dict:
    r = dict(r)
    r["hash"] = reference_hash(
        r["seq"], r["kind"], r["subject"], r["at"], r["data"], r["prev_hash"]
    )
    return r


chains = st.lists(events, min_size=1, max_size=12).map(reference_chain)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=12))
def test_an_untouched_chain_verifies(evs) -> None:
    records = reference_chain(evs)
    result = _check(records, _head(records), anchors=[_head(records)] if records else ())
    assert result.ok, result.problems
    assert result.records == len(evs)
    assert result.head_hash == _head(records).hash


def _changed(data: dict) -> dict:
    """`data` with one value that differs from before, whatever it held."""
    return data | {"tampered": 2 if data.get("tampered") == 1 else 1}


def _edit(records, i, rehash_record):
    out = list(records)
    r = dict(out[i], data=_changed(out[i]["data"]))
    out[i] = _rehash(r) if rehash_record else r
    return out


def _delete(records, i, renumber):
    out = records[:i] + records[i + 1 :]
    if renumber:
        out = out[:i] + [dict(r, seq=r["seq"] - 1) for r in out[i:]]
    return out


def _insert(records, i, forged_event):
    prev = records[i - 1]["hash"] if i else GENESIS
    (forged,) = reference_chain([forged_event], start_seq=i, start_hash=prev)
    return records[:i] + [forged] + [dict(r, seq=r["seq"] + 1) for r in records[i:]]


@settings(max_examples=200, deadline=None)
@given(chains, st.data())
def test_every_edit_deletion_insertion_or_truncation_is_reported(records, data) -> None:
    head = _head(records)
    n = len(records)
    op = data.draw(
        st.sampled_from(["edit", "edit+rehash", "delete", "delete+renumber", "insert", "truncate"])
    )
    i = data.draw(st.integers(0, n - 1))
    last = i == n - 1
    if op.startswith("edit"):
        tampered = _edit(records, i, op == "edit+rehash")
        if op == "edit":
            expected = f"seq {i + 1}: hash does not match"
        else:
            expected = "differs from the head row" if last else f"seq {i + 2}: prev_hash"
    elif op.startswith("delete"):
        tampered = _delete(records, i, op == "delete+renumber")
        if last:
            expected = "tail truncated"
        else:
            expected = f"seq {i + 1}: prev_hash" if op.endswith("renumber") else "missing"
    elif op == "insert":
        at = data.draw(st.integers(0, n))
        tampered = _insert(records, at, data.draw(events))
        expected = "beyond the head row" if at == n else f"seq {at + 2}: prev_hash"
    else:
        tampered = records[: data.draw(st.integers(0, n - 1))]
        expected = "tail truncated"
    result = _check(tampered, head)
    assert not result.ok
    assert any(expected in p for p in result.problems), (expected, result.problems)


@settings(max_examples=100, deadline=None)
@given(chains, st.data())
def test_a_fully_rewritten_chain_is_caught_only_by_an_earlier_anchor(records, data) -> None:
    """Edit one record, recompute every later hash and the head: internally consistent, but
    a head published before (a settlement manifest) no longer matches."""
    i = data.draw(st.integers(0, len(records) - 1))
    anchor = _head(records)
    rewritten, prev = [], GENESIS
    for j, r in enumerate(records):
        r = dict(r, prev_hash=prev, data=_changed(r["data"]) if j == i else r["data"])
        r = _rehash(r)
        rewritten.append(r)
        prev = r["hash"]
    assert _check(rewritten, _head(rewritten)).ok
    caught = _check(rewritten, _head(rewritten), anchors=[anchor])
    assert not caught.ok
    assert any("anchor" in p for p in caught.problems)


def test_problems_are_bounded_and_counted() -> None:
    evs = [AuditEvent("transfer.state", f"T{i}", AT, {"i": i}) for i in range(300)]
    records = reference_chain(evs)
    head = _head(records)
    tampered = [dict(r, data={"i": -1}) for r in records]
    result = _check(tampered, head)
    assert not result.ok
    assert len(result.problems) == 101
    assert result.problems[-1] == "... and 200 more problems"
