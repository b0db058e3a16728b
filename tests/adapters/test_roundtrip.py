"""decode(encode(t)) gives back t, up to each scheme's documented rules (helpers.after_round_trip)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import TranslationError
from adapters.registry import get_adapter
from clearing.model import Party
from clearing.money import Money
from tests.adapters.helpers import (
    HKT,
    SCHEMES,
    after_round_trip,
    created,
    ids35,
    sample_transfer,
    transfers,
)


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data(), msg_id=ids35, created_at=created)
def test_one_transfer_round_trips(
    scheme: str, data: st.DataObject, msg_id: str, created_at: datetime
) -> None:
    t = data.draw(transfers(scheme))
    adapter = get_adapter(scheme)
    message = adapter.decode_transfers(
        adapter.encode_transfer(t, msg_id=msg_id, created_at=created_at)
    )
    assert message.rejections == []
    assert message.msg_id == msg_id and message.created_at == created_at
    assert [tx.transfer for tx in message.txs] == [after_round_trip(t, scheme, msg_id, created_at)]


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_transfer_of_a_message_round_trips(scheme: str, data: st.DataObject) -> None:
    batch = data.draw(
        st.lists(transfers(scheme), min_size=2, max_size=6, unique_by=lambda t: t.end_to_end_id)
    )
    adapter = get_adapter(scheme)
    when = datetime(2025, 6, 22, 12, 0, tzinfo=HKT)
    # As delivered by the gateway: each with its transfer id.
    delivered = [replace(t, id=f"{i:032x}") for i, t in enumerate(batch)]
    message = adapter.decode_transfers(
        adapter.encode_transfers(delivered, msg_id="BATCH-1", created_at=when)
    )
    assert message.rejections == []
    assert [tx.index for tx in message.txs] == list(range(len(batch)))
    assert [tx.transfer for tx in message.txs] == [
        after_round_trip(t, scheme, "BATCH-1", when) for t in batch
    ]
    # Each transaction carries the gateway's id (ClrSysRef), the receiver's deduplication key.
    assert [tx.clearing_ref for tx in message.txs] == [t.id for t in delivered]


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_converted_transfer_carries_the_creditor_amount(scheme: str, data: st.DataObject) -> None:
    """With creditor_amount set, the receiver sees it as the settlement amount, and the
    debtor-side amount as InstdAmt (the amount as the payer instructed it)."""
    t = data.draw(transfers(scheme))
    target_currency = t.amount.currency
    t = replace(
        t, amount=Money(t.amount.minor, "USD"), creditor_amount=t.amount, instructed_amount=None
    )
    adapter = get_adapter(scheme)
    when = datetime(2025, 6, 22, 12, 0)
    (tx,) = adapter.decode_transfers(adapter.encode_transfer(t, msg_id="FX-1", created_at=when)).txs
    assert tx.transfer is not None
    assert tx.transfer.amount == t.creditor_amount
    assert tx.transfer.amount.currency == target_currency
    assert tx.transfer.instructed_amount == t.amount
    assert tx.transfer.exchange_rate == t.exchange_rate


@pytest.mark.parametrize(("scheme", "cut"), [("hk-fps", 140), ("mo-fps", 140), ("cn-ibps", 60)])
def test_a_name_longer_than_the_target_field_is_cut_to_it(scheme: str, cut: int) -> None:
    long_name = "陳" * 100 + "A" * 100
    t = sample_transfer(scheme, creditor=Party(long_name))
    adapter = get_adapter(scheme)
    (tx,) = adapter.decode_transfers(
        adapter.encode_transfer(t, msg_id="CUT", created_at=datetime(2025, 1, 1))
    ).txs
    assert tx.transfer is not None
    assert tx.transfer.creditor.name == long_name[:cut]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_transfer_without_creditor_agent_cannot_be_sent(scheme: str) -> None:
    t = sample_transfer(scheme, creditor_agent=None)
    with pytest.raises(TranslationError) as err:
        get_adapter(scheme).encode_transfer(t, msg_id="X", created_at=datetime(2025, 1, 1))
    assert "RC10" in {r.code for r in err.value.rejections}
