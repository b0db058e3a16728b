"""The element walker and its shape memory give the same flat map and the same problems."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from adapters.checks import Problems
from adapters.pacs.mapping import NS_PACS008, TX_SCHEMA
from adapters.walk import Reader, flatten
from adapters.xmlsafe import XmlRejected, parse
from tests.adapters.helpers import fixture
from tests.adapters.test_fuzz import restructured


def test_remembered_shape_reads_like_the_exact_walk() -> None:
    reader = Reader(TX_SCHEMA, NS_PACS008)
    for name in ("hk-fps/pacs008_multi.xml", "hk-fps/pacs008_northbound_single.xml"):
        for tx in parse(fixture(name))[0][1:]:
            exact = flatten(tx, reader.node, Problems(""))
            assert reader.flatten(tx, Problems("")) == exact  # first: exact walk
            assert reader.flatten(tx, Problems("")) == exact  # then: remembered plan


def test_shapes_with_problems_are_not_remembered() -> None:
    reader = Reader(TX_SCHEMA, NS_PACS008)
    data = fixture("hk-fps/pacs008_multi.xml").replace(
        b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>SLEV</ChrgBr><Tax/>"
    )
    tx = parse(data)[0][1]
    for _ in range(2):
        probs = Problems("")
        reader.flatten(tx, probs)
        assert [r.path for r in probs.items] == ["Tax"]


def test_the_number_of_remembered_shapes_is_bounded() -> None:
    reader = Reader(TX_SCHEMA, NS_PACS008, shapes_max=1)
    txs = list(parse(fixture("hk-fps/pacs008_multi.xml"))[0][1:])
    for tx in txs * 2:
        assert reader.flatten(tx, Problems("")) == flatten(tx, reader.node, Problems(""))
    assert len(reader._plans) == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=restructured())
def test_any_shape_reads_the_same_remembered_or_not(data: bytes) -> None:
    try:
        root = parse(data[data.find(b"<?xml") :])
    except XmlRejected:
        return
    for tx in root.iter(f"{{{NS_PACS008}}}CdtTrfTxInf"):
        reader = Reader(TX_SCHEMA, NS_PACS008)
        exact, first, again = Problems(""), Problems(""), Problems("")
        expected = flatten(tx, reader.node, exact)
        assert reader.flatten(tx, first) == expected
        assert reader.flatten(tx, again) == expected
        assert first.items == exact.items == again.items
