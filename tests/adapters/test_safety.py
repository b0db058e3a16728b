"""Hostile and broken bytes are refused with FF01, never parsed into anything, never echoed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.base import AdapterError
from adapters.hk_fps.adapter import PROFILE
from adapters.pacs.adapter import PacsAdapter
from adapters.registry import get_adapter
from adapters.xmlsafe import XmlLimits
from clearing.reasons import Reason
from tests.adapters.helpers import SCHEMES, fixture

HK = "hk-fps/pacs008_multi.xml"


def refusal(scheme: str, data: bytes) -> str:
    message = get_adapter(scheme).decode_transfers(data)
    assert message.error is not None, "expected the message to be refused"
    assert message.error.code == Reason.FF01
    assert message.txs == () and message.transfers == []
    return message.error.message


def as_ibps(xml: bytes) -> bytes:
    """Put a document behind the header of the golden IBPS message."""
    head = fixture("cn-ibps/ibps101_southbound_single.txt").partition(b"\n")[0]
    return head + b"\n" + xml


@pytest.mark.parametrize("scheme", SCHEMES)
def test_external_entity_is_refused_and_not_echoed(scheme: str) -> None:
    data = fixture("hostile/xxe.xml")
    message = refusal(scheme, as_ibps(data) if scheme == "cn-ibps" else data)
    assert "DOCTYPE" in message
    assert "passwd" not in message and "secret" not in message


@pytest.mark.parametrize("scheme", SCHEMES)
def test_entity_expansion_bomb_is_refused_and_not_echoed(scheme: str) -> None:
    data = fixture("hostile/billion_laughs.xml")
    message = refusal(scheme, as_ibps(data) if scheme == "cn-ibps" else data)
    assert "lol" not in message


def test_invalid_utf8_is_refused_with_its_position() -> None:
    data = fixture(HK).replace("茶餐廳".encode(), b"\xe8\x8c\xff\xff")
    assert "UTF-8" in refusal("hk-fps", data)


def test_a_document_declaring_another_encoding_is_refused() -> None:
    data = fixture(HK).replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"')
    assert "UTF-8" in refusal("hk-fps", data)


@pytest.mark.parametrize("cut", [1, 100, 1000, 2000, -20, -2])
def test_a_truncated_document_is_refused(cut: int) -> None:
    data = fixture(HK)
    assert refusal("hk-fps", data[:cut]) != ""


@pytest.mark.parametrize("data", [b"", b"   \n", b"not xml at all", b"<a>", b"\x00\x01\x02"])
def test_garbage_is_refused(data: bytes) -> None:
    for scheme in SCHEMES:
        refusal(scheme, data)


def test_the_size_limit_is_enforced_before_parsing() -> None:
    adapter = PacsAdapter(replace(PROFILE, limits=XmlLimits(size_bytes_max=1000)))
    message = adapter.decode_transfers(fixture(HK))
    assert message.error is not None and "larger than 1000 bytes" in message.error.message


def test_the_depth_limit_is_enforced() -> None:
    nested = b"<x>" * 40 + b"</x>" * 40
    data = fixture(HK).replace(b"<Nm>Lee Ka Yan</Nm>", b"<Nm>Lee Ka Yan</Nm>" + nested)
    assert "deeper than" in refusal("hk-fps", data)


def test_a_message_with_more_transactions_than_allowed_is_refused() -> None:
    adapter = PacsAdapter(replace(PROFILE, txs_max=2))
    message = adapter.decode_transfers(fixture(HK))
    assert message.error is not None and "more than 2 transactions" in message.error.message


def test_a_str_instead_of_bytes_is_refused_not_raised() -> None:
    message = get_adapter("hk-fps").decode_transfers(fixture(HK).decode())  # type: ignore[arg-type]
    assert message.error is not None


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hostile_status_replies_raise_only_adapter_errors(scheme: str) -> None:
    adapter = get_adapter(scheme)
    for name in ("hostile/xxe.xml", "hostile/billion_laughs.xml", HK):
        data = fixture(name)
        with pytest.raises(AdapterError) as err:
            adapter.decode_status_reply(as_ibps(data) if scheme == "cn-ibps" else data)
        assert err.value.rejection.code == Reason.FF01
        assert "passwd" not in str(err.value) and "lol" not in str(err.value)
