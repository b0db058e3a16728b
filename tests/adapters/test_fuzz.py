"""Mutations of every fixture: decoders return data and never raise; reply decoders raise only
AdapterError. Seeded from tests/fixtures so the mutations start close to valid messages."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.base import AdapterError, DecodedMessage
from adapters.registry import get_adapter
from tests.adapters.helpers import SCHEMES, all_fixtures

SEEDS = [p.read_bytes() for p in all_fixtures()]
WELL_FORMED_SEEDS = [p.read_bytes() for p in all_fixtures() if p.parent.name != "hostile"]
TOKENS = [
    b"<",
    b">",
    b"/",
    b"&",
    b"&amp;",
    b"&#0;",
    b"]]>",
    b"<![CDATA[",
    b"\x00",
    b"\xff",
    b"\xe4\xb8",
    b"{H:",
    b"{S:",
    b"\r\n",
    b"-",
    b".",
    b"0",
    b'Ccy="',
    b"<!--",
    b"<?x",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.integers(0, 5))
        if kind == 0:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1:
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == 2:
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == 3:
            end = min(len(data), at + draw(st.integers(1, 200)))
            data[at:at] = data[at:end]  # duplicate a slice: repeated elements
        elif kind == 4:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:]
    return bytes(data)


TEXTS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1.001",
            "99999999999999999999",
            "HKD",
            "X" * 200,
            "陳",
            "+852-91234567",
            "NOTPROVIDED",
            "\t",
            "\ud7ff",
        ]
    ),
    st.text(max_size=40).map(lambda s: "".join(c for c in s if c.isprintable())),
)


@st.composite
def restructured(draw: st.DrawFn) -> bytes:
    """Well-formed mutations: a leaf's text changed, an element removed, duplicated or renamed."""
    seed = draw(st.sampled_from(WELL_FORMED_SEEDS))
    start = seed.find(b"<?xml")
    if start < 0:
        start = seed.find(b"<")
    head, root = seed[:start], etree.fromstring(seed[start:])
    for _ in range(draw(st.integers(1, 4))):
        elements = list(root.iter())
        el = elements[draw(st.integers(0, len(elements) - 1))]
        kind = draw(st.integers(0, 3))
        parent = el.getparent()
        if kind == 0 or parent is None:
            el.text = draw(TEXTS)
        elif kind == 1:
            parent.remove(el)
        elif kind == 2:
            parent.insert(parent.index(el), copy.deepcopy(el))
        else:
            el.tag = (
                el.tag.rpartition("}")[0]
                + "}"
                + draw(st.sampled_from(["Nm", "Id", "Amt", "Othr", "X"]))
            )
    return head + etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _check(message: DecodedMessage) -> None:
    assert isinstance(message, DecodedMessage)
    for tx in message.txs:
        assert (tx.transfer is None) == bool(tx.errors)
    if message.error is not None:
        assert message.transfers == []


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutations_never_raise_from_decode(scheme: str, data: bytes) -> None:
    _check(get_adapter(scheme).decode_transfers(data))


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=restructured())
def test_well_formed_mutations_never_raise(scheme: str, data: bytes) -> None:
    _check(get_adapter(scheme).decode_transfers(data))
    try:
        get_adapter(scheme).decode_status_reply(data)
    except AdapterError:
        pass


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutations_raise_only_adapter_error_from_reply_decode(scheme: str, data: bytes) -> None:
    try:
        get_adapter(scheme).decode_status_reply(data)
    except AdapterError:
        pass
