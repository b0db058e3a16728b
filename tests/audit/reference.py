"""A slow, obvious model of the journal: records as dicts, hashes from `json.dumps` of the
whole record, and the strategies that generate events for the property tests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from gateway.audit import AuditEvent

GENESIS = "0" * 64


def reference_hash(seq: int, kind: str, subject: str, at: datetime, data: Any, prev: str) -> str:
    record = {
        "seq": seq,
        "kind": kind,
        "subject": subject,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
        "data": data,
        "prev_hash": prev,
    }
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def reference_chain(events: list[AuditEvent], start_seq: int = 0, start_hash: str = GENESIS):
    """The records `append` must produce, as dicts with hex hashes."""
    records, prev = [], start_hash
    for i, e in enumerate(events, start=start_seq + 1):
        digest = reference_hash(i, e.kind, e.subject, e.at, json.loads(json.dumps(e.data)), prev)
        records.append(
            {
                "seq": i,
                "prev_hash": prev,
                "hash": digest,
                "kind": e.kind,
                "subject": e.subject,
                "at": e.at,
                "data": json.loads(json.dumps(e.data)),
            }
        )
        prev = digest
    return records


# Text that PostgreSQL and JSON both keep as is: any Unicode but NUL and lone surrogates.
texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
kinds = st.sampled_from(["message.accepted", "transfer.state", "window.closed", "a.b_c.d9"])
subjects = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones
)
events = st.builds(
    AuditEvent,
    kind=kinds,
    subject=subjects,
    at=instants,
    data=st.dictionaries(texts, json_values, max_size=5),
)
