"""Golden messages written for the project decode to exactly these canonical transfers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from adapters.registry import get_adapter
from adapters.xmlsafe import pretty
from clearing.model import Account, Agent, Party, PartyId, PartyIdType, Proxy, ProxyType, Transfer
from clearing.money import Money
from tests.adapters.helpers import FIXTURES, HKT, fixture, sample_transfer


def test_hk_northbound_single_decodes_every_field() -> None:
    message = get_adapter("hk-fps").decode_transfers(
        fixture("hk-fps/pacs008_northbound_single.xml")
    )
    assert message.error is None
    assert message.msg_id == "HK012-20250622-000001"
    assert message.instructing_member_id == "012"
    created = datetime(2025, 6, 22, 9, 30, 15, tzinfo=HKT)
    assert message.created_at == created
    (tx,) = message.txs
    assert tx.transfer == Transfer(
        msg_id="HK012-20250622-000001",
        end_to_end_id="NB-E2E-0001",
        source_scheme="hk-fps",
        amount=Money(888_80, "CNY"),
        debtor=Party("CHAN Tai Man 陳大文", PartyId(PartyIdType.HKID, "A1234563")),
        debtor_account=Account("01287500123456"),
        debtor_agent=Agent("HKNCC", "012", "Bank of China (Hong Kong)"),
        creditor=Party("李小梅"),
        creditor_account=Account(None, Proxy(ProxyType.MOBILE, "+86-13800138000")),
        creditor_agent=Agent("CNAPS", "104584000003", "中国银行深圳市分行"),
        destination_scheme="cn-ibps",
        tx_id="NB-TX-0001",
        instr_id="INSTR-0001",
        uetr="3f0c1f0e-9a55-4b6e-8a3e-1c2d3e4f5a6b",
        purpose="GIFT",
        category_purpose="A100",
        remittance_info="生日快乐 Happy birthday",
        charge_bearer="SLEV",
        created_at=created,
    )


def test_hk_multi_decodes_all_three_transactions() -> None:
    message = get_adapter("hk-fps").decode_transfers(fixture("hk-fps/pacs008_multi.xml"))
    assert message.rejections == []
    assert message.instructing_member_id == "004"  # no InstgAgt: the first debtor agent
    assert message.created_at == datetime(2025, 6, 22, 14, 5, 0, 250_000, tzinfo=HKT)
    t1, t2, t3 = (tx.transfer for tx in message.txs)
    assert t1 and t2 and t3
    assert (t1.end_to_end_id, t1.amount, t1.tx_id) == ("HSBC-E2E-1", Money(100_25, "HKD"), None)
    assert t1.creditor == Party("茶餐廳有限公司")
    assert t1.creditor_account == Account(None, Proxy(ProxyType.FPS_ID, "12345674"))
    assert t1.remittance_info == "Lunch 午餐"
    assert (t2.amount, t2.charge_bearer, t2.purpose) == (Money(2500_00, "HKD"), "DEBT", "RENT")
    assert t2.creditor_account == Account(
        "50012345678", Proxy(ProxyType.EMAIL, "ka.yan.lee@example.hk")
    )
    assert t2.creditor_agent == Agent("HKNCC", "003")
    assert t3.amount == Money(10000_50, "CNY")
    assert t3.debtor == Party("WONG Siu Ming", PartyId(PartyIdType.HKID, "K6543219"))
    assert (t3.creditor.name, t3.creditor_account.number) == (
        "广州市天河区某某贸易有限公司",
        "3602000109200012345",
    )
    assert (t3.creditor_agent, t3.destination_scheme) == (Agent("CNAPS", "102584002208"), "cn-ibps")


def test_ibps_southbound_single_decodes_every_field() -> None:
    message = get_adapter("cn-ibps").decode_transfers(
        fixture("cn-ibps/ibps101_southbound_single.txt")
    )
    assert message.error is None
    assert message.instructing_member_id == "102100099996"
    (tx,) = message.txs
    assert tx.transfer == Transfer(
        msg_id="2025062210210001",
        end_to_end_id="SB-E2E-0001",
        source_scheme="cn-ibps",
        amount=Money(1000_00, "CNY"),
        debtor=Party("张伟", PartyId(PartyIdType.CN_RIC, "440305199003071236")),
        debtor_account=Account("6222020200012345678"),
        debtor_agent=Agent("CNAPS", "102100099996", "中国工商银行总行清算中心"),
        creditor=Party("陳美玲"),
        creditor_account=Account(None, Proxy(ProxyType.FPS_ID, "9876541")),
        creditor_agent=Agent("HKNCC", "004"),
        destination_scheme="hk-fps",
        tx_id="ICBC20250622000001",
        purpose="02102",
        category_purpose="A100",
        remittance_info="家用 household",
        created_at=datetime(2025, 6, 22, 10, 21),
    )


def test_ibps_signed_multi_decodes_all_three_transactions() -> None:
    message = get_adapter("cn-ibps").decode_transfers(fixture("cn-ibps/ibps101_multi_signed.txt"))
    assert message.rejections == []
    t1, t2, t3 = (tx.transfer for tx in message.txs)
    assert t1 and t2 and t3
    assert t1.creditor_account.proxy == Proxy(ProxyType.MOBILE, "+852-91234567")
    assert t1.uetr == "b7e1c2d3-4f5a-4b6c-9d7e-8f9a0b1c2d3e"
    assert t2.debtor == Party(
        "深圳市前海示例科技有限公司", PartyId(PartyIdType.CN_USCC, "91440300MA5DC12341")
    )
    assert t2.creditor_agent == Agent("HKNCC", "003", "Standard Chartered Bank (Hong Kong)")
    assert (t3.amount, t3.creditor_agent, t3.destination_scheme) == (
        Money(10000_00, "CNY"),
        Agent("CNAPS", "308584000013", "招商银行深圳分行"),
        "cn-ibps",
    )
    assert sum(t.amount.minor for t in (t1, t2, t3)) == 52345_67


def test_mo_fps_messages_decode() -> None:
    single = get_adapter("mo-fps").decode_transfers(fixture("mo-fps/pacs008_single.xml"))
    (tx,) = single.txs
    assert tx.transfer is not None
    assert tx.transfer.amount == Money(350_00, "MOP")
    assert tx.transfer.debtor == Party("何嘉欣", PartyId(PartyIdType.MO_BIR, "12345678"))
    assert tx.transfer.creditor_account.proxy == Proxy(ProxyType.MOBILE, "+853-66123456")
    assert tx.transfer.creditor_agent == Agent("MOFPS", "007")
    multi = get_adapter("mo-fps").decode_transfers(fixture("mo-fps/pacs008_multi.xml"))
    assert multi.rejections == []
    amounts = [tx.transfer.amount for tx in multi.txs if tx.transfer]
    assert amounts == [Money(200_10, "MOP"), Money(5000_00, "HKD")]
    assert [tx.transfer.destination_scheme for tx in multi.txs if tx.transfer] == [
        "mo-fps",
        "hk-fps",
    ]


def test_outbound_pacs008_matches_the_golden_file() -> None:
    """The exact bytes Baygate sends a Hong Kong provider for a southbound transfer."""
    t = sample_transfer("hk-fps", id="BG-7f3a", charge_bearer="SLEV")
    out = get_adapter("hk-fps").encode_transfer(
        t, msg_id="BG-OUT-000123", created_at=datetime(2025, 6, 22, 10, 21, 1, tzinfo=HKT)
    )
    assert pretty(out) == (FIXTURES / "hk-fps/out_pacs008_southbound.xml").read_bytes()


def test_outbound_ibps101_matches_the_golden_file() -> None:
    t = sample_transfer(
        "cn-ibps",
        debtor=Party("CHAN Tai Man 陳大文", PartyId(PartyIdType.HKID, "A1234563")),
        debtor_account=Account("01287500123456"),
        debtor_agent=Agent("HKNCC", "012", "Bank of China (Hong Kong)"),
        creditor=Party("李小梅"),
        creditor_account=Account(None, Proxy(ProxyType.MOBILE, "+86-13800138000")),
        creditor_agent=Agent("CNAPS", "104584000003"),
        amount=Money(888_80, "CNY"),
    )
    out = get_adapter("cn-ibps").encode_transfer(
        t,
        msg_id="BG-OUT-000124",
        created_at=datetime(2025, 6, 22, 9, 30, 16, tzinfo=timezone(timedelta(hours=8))),
    )
    head, _, body = out.partition(b"\n")
    golden = (FIXTURES / "cn-ibps/out_ibps101_northbound.txt").read_bytes()
    ghead, _, gbody = golden.partition(b"\n")
    assert head == ghead
    assert pretty(body) == gbody
