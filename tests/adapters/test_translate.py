"""Translation between schemes: field mapping only, nothing lost without a documented rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import TranslationError
from adapters.registry import get_adapter
from adapters.translate import translate
from clearing.model import Transfer
from clearing.money import Money
from tests.adapters.helpers import HKT, fixture, ids35, sample_transfer, transfers

WHEN = datetime(2025, 6, 22, 9, 30, tzinfo=HKT)


def carried_by_both(t: Transfer) -> Transfer:
    """An hk-fps transfer cn-ibps can carry: CNY, SLEV, names and remittance within IBPS sizes."""
    return replace(t, amount=Money(t.amount.minor, "CNY"), charge_bearer="SLEV")


@settings(max_examples=100, deadline=None)
@given(
    batch=st.lists(
        transfers("hk-fps"), min_size=1, max_size=4, unique_by=lambda t: t.end_to_end_id
    ),
    msg_id=ids35,
)
def test_hk_to_ibps_and_back_preserves_amounts_ids_names_accounts(
    batch: list[Transfer], msg_id: str
) -> None:
    batch = [carried_by_both(t) for t in batch]
    hk_bytes = get_adapter("hk-fps").encode_transfers(batch, msg_id=msg_id, created_at=WHEN)
    ibps_bytes = translate("hk-fps", "cn-ibps", hk_bytes)
    back = get_adapter("hk-fps").decode_transfers(translate("cn-ibps", "hk-fps", ibps_bytes))
    assert back.rejections == [] and back.msg_id == msg_id and back.created_at == WHEN
    for original, tx in zip(batch, back.txs, strict=True):
        t = tx.transfer
        assert t is not None
        assert (t.amount, t.instructed_amount, t.exchange_rate) == (
            original.amount,
            original.instructed_amount,
            original.exchange_rate,
        )
        assert (t.end_to_end_id, t.uetr) == (original.end_to_end_id, original.uetr)
        assert t.tx_id == (original.tx_id or original.end_to_end_id)  # TxId is mandatory in IBPS
        assert (t.debtor, t.creditor) == (original.debtor, original.creditor)
        assert (t.debtor_account, t.creditor_account) == (
            original.debtor_account,
            original.creditor_account,
        )
        assert (t.debtor_agent, t.creditor_agent) == (
            original.debtor_agent,
            original.creditor_agent,
        )
        assert (t.purpose, t.category_purpose, t.remittance_info, t.charge_bearer) == (
            original.purpose,
            original.category_purpose,
            original.remittance_info,
            "SLEV",
        )
        assert t.instr_id is None  # documented: point-to-point, not forwarded into IBPS


@pytest.mark.parametrize(
    ("source", "target", "name"),
    [
        ("hk-fps", "cn-ibps", "hk-fps/pacs008_northbound_single.xml"),
        ("cn-ibps", "hk-fps", "cn-ibps/ibps101_southbound_single.txt"),
        ("cn-ibps", "hk-fps", "cn-ibps/ibps101_multi_signed.txt"),
        ("mo-fps", "mo-fps", "mo-fps/pacs008_multi.xml"),
        ("hk-fps", "hk-fps", "hk-fps/pacs008_multi.xml"),
    ],
)
def test_golden_messages_translate_and_keep_every_transaction(
    source: str, target: str, name: str
) -> None:
    original = get_adapter(source).decode_transfers(fixture(name))
    out = get_adapter(target).decode_transfers(translate(source, target, fixture(name)))
    assert out.rejections == []
    assert out.msg_id == original.msg_id
    assert [t.transfer.amount for t in out.txs] == [t.transfer.amount for t in original.txs]  # type: ignore[union-attr]
    assert [t.end_to_end_id for t in out.txs] == [t.end_to_end_id for t in original.txs]


def test_currency_the_target_does_not_carry_is_an_error() -> None:
    with pytest.raises(TranslationError) as err:
        translate("mo-fps", "hk-fps", fixture("mo-fps/pacs008_multi.xml"))
    (problem,) = err.value.rejections
    assert (problem.code.value, problem.path) == ("AM03", "MO-E2E-0101/amount")
    assert "MOP" in problem.message


def test_hkd_into_ibps_is_an_error_no_fx() -> None:
    with pytest.raises(TranslationError) as err:
        translate("hk-fps", "cn-ibps", fixture("hk-fps/pacs008_multi.xml"))
    codes = {(r.code.value, r.path) for r in err.value.rejections}
    assert ("AM03", "HSBC-E2E-1/amount") in codes
    assert ("AM03", "HSBC-E2E-2/amount") in codes
    assert ("NARR", "HSBC-E2E-2/charge_bearer") in codes  # DEBT has no IBPS equivalent
    assert not any(path.startswith("HSBC-E2E-3") for _, path in codes)


def test_remittance_longer_than_ibps_carries_is_an_error() -> None:
    t = sample_transfer("cn-ibps", remittance_info="x" * 141)
    with pytest.raises(TranslationError) as err:
        get_adapter("cn-ibps").encode_transfer(t, msg_id="M", created_at=WHEN)
    assert [(r.code.value, r.path) for r in err.value.rejections] == [
        ("FF01", "SAMPLE-E2E-1/remittance_info")
    ]


def test_long_remittance_is_split_over_several_ustrd_in_pacs() -> None:
    text = "付款" * 150  # 300 characters
    t = sample_transfer("hk-fps", remittance_info=text)
    data = get_adapter("hk-fps").encode_transfer(t, msg_id="M", created_at=WHEN)
    assert data.count(b"<Ustrd>") == 3
    (tx,) = get_adapter("hk-fps").decode_transfers(data).txs
    assert tx.transfer is not None and tx.transfer.remittance_info == text


def test_a_message_with_problems_does_not_translate() -> None:
    bad = fixture("hk-fps/pacs008_multi.xml").replace(
        b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>"
    )
    with pytest.raises(TranslationError) as err:
        translate("hk-fps", "mo-fps", bad)
    assert err.value.rejections[0].path == "GrpHdr/NbOfTxs"


def test_ibps_participants_from_the_transfers_or_the_link_code() -> None:
    adapter = get_adapter("cn-ibps")
    domestic = sample_transfer(
        "cn-ibps", creditor_agent=sample_transfer().debtor_agent.__class__("CNAPS", "308584000013")
    )
    data = adapter.encode_transfer(domestic, msg_id="M", created_at=WHEN)
    assert b"<InstgDrctPty>102100099996<" in data and b"<InstdDrctPty>308584000013<" in data
    southbound = sample_transfer("cn-ibps")  # creditor agent is a Hong Kong bank
    data = adapter.encode_transfer(southbound, msg_id="M", created_at=WHEN)
    assert b"<InstdDrctPty>999100000019<" in data
    assert adapter.decode_transfers(data).instructing_member_id == "102100099996"
