"""Bad messages are refused as data: a reason code, the field path, and a message naming it.

Each case starts from a valid golden message and changes one thing.
"""

from __future__ import annotations

import pytest

from adapters.base import DecodedMessage
from adapters.registry import get_adapter
from clearing.reasons import Reason
from tests.adapters.helpers import fixture

HK_MULTI = "hk-fps/pacs008_multi.xml"
HK_SINGLE = "hk-fps/pacs008_northbound_single.xml"
IBPS_MULTI = "cn-ibps/ibps101_multi_signed.txt"


def decode(
    scheme: str, name: str, old: str = "", new: str = "", count: int = 1, *also: tuple[str, str]
) -> DecodedMessage:
    """The fixture with `old` replaced by `new` (and each further (old, new) pair), decoded."""
    data = fixture(name)
    for before, after, n in ((old, new, count), *((a, b, 1) for a, b in also)):
        if before:
            assert before.encode() in data, f"fixture {name} lacks {before!r}"
            data = data.replace(before.encode(), after.encode(), n)
    return get_adapter(scheme).decode_transfers(data)


# A changed amount changes the sum: these keep the control sum out of the way.
NO_CTRL_SUM = ("<CtrlSum>12600.75</CtrlSum>", "")


def only_tx_errors(message: DecodedMessage, index: int) -> list[tuple[str, str]]:
    """The (code, path) of transaction `index`'s errors, checking every other one is clean."""
    assert message.error is None, message.error
    for tx in message.txs:
        if tx.index != index:
            assert tx.errors == () and tx.transfer is not None
    return [(r.code.value, r.path) for r in message.txs[index].errors]


@pytest.mark.parametrize(
    ("old", "new", "code", "path"),
    [
        (
            '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>',
            '<IntrBkSttlmAmt Ccy="HKD">0.00</IntrBkSttlmAmt>',
            "AM01",
            "IntrBkSttlmAmt",
        ),
        (
            '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>',
            '<IntrBkSttlmAmt Ccy="HKD">-2500</IntrBkSttlmAmt>',
            "AM12",
            "IntrBkSttlmAmt",
        ),
        (
            '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>',
            '<IntrBkSttlmAmt Ccy="HKD">2500.001</IntrBkSttlmAmt>',
            "AM12",
            "IntrBkSttlmAmt",
        ),
        (
            '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>',
            '<IntrBkSttlmAmt Ccy="HKD">2,500</IntrBkSttlmAmt>',
            "AM12",
            "IntrBkSttlmAmt",
        ),
        (
            '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>',
            '<IntrBkSttlmAmt Ccy="XYZ">2500</IntrBkSttlmAmt>',
            "AM03",
            "IntrBkSttlmAmt/@Ccy",
        ),
        (
            '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>',
            '<IntrBkSttlmAmt Ccy="MOP">2500</IntrBkSttlmAmt>',
            "AM03",
            "IntrBkSttlmAmt/@Ccy",
        ),
        ('<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>', "", "FF01", "IntrBkSttlmAmt"),
        ("<EndToEndId>HSBC-E2E-2</EndToEndId>", "", "FF01", "PmtId/EndToEndId"),
        (
            "<EndToEndId>HSBC-E2E-2</EndToEndId>",
            f"<EndToEndId>{'X' * 36}</EndToEndId>",
            "FF01",
            "PmtId/EndToEndId",
        ),
        ("<ChrgBr>DEBT</ChrgBr>", "<ChrgBr>BOTH</ChrgBr>", "FF01", "ChrgBr"),
        ("<MmbId>003</MmbId>", "<MmbId>03</MmbId>", "RC10", "CdtrAgt/FinInstnId/ClrSysMmbId"),
        (
            "<Cd>EMAL</Cd></Tp><Id>ka.yan.lee@example.hk",
            "<Cd>EMAL</Cd></Tp><Id>ka.yan.lee@",
            "BE23",
            "CdtrAcct/Prxy",
        ),
        ("<Id>50012345678</Id>", "<Id>5001</Id>", "AC01", "CdtrAcct"),
        (
            "<Purp><Cd>RENT</Cd></Purp>",
            "<Purp><Cd>RENT</Cd><Prtry>X</Prtry></Purp>",
            "FF01",
            "Purp",
        ),
        (
            "<Nm>Lee Ka Yan</Nm>",
            "<Nm>Lee Ka Yan</Nm><PstlAdr><TwnNm>HK</TwnNm></PstlAdr>",
            "FF01",
            "Cdtr/PstlAdr",
        ),
        ("<Nm>Lee Ka Yan</Nm>", "<Nm><b>Lee</b></Nm>", "FF01", "Cdtr/Nm"),
        ("<ChrgBr>DEBT</ChrgBr>", "<ChrgBr>DEBT</ChrgBr><ChrgBr>DEBT</ChrgBr>", "FF01", "ChrgBr"),
    ],
)
def test_a_bad_transaction_rejects_itself_only(old: str, new: str, code: str, path: str) -> None:
    message = decode("hk-fps", HK_MULTI, old, new, 1, NO_CTRL_SUM)
    assert (code, f"CdtTrfTxInf[2]/{path}") in only_tx_errors(message, 1)
    assert message.transfers == [message.txs[0].transfer, message.txs[2].transfer]


@pytest.mark.parametrize(
    ("old", "new", "code", "path"),
    [
        ("<Id>A1234563</Id>", "<Id>A1234564</Id>", "RR04", "Dbtr/Id/PrvtId/Othr"),
        ("<Prtry>HKID</Prtry>", "<Prtry>PASSPORT</Prtry>", "RR04", "Dbtr/Id/PrvtId/Othr"),
        ("PrvtId>", "OrgId>", "FF01", "Dbtr/Id/OrgId/Othr"),
        ("<Id>+86-13800138000</Id>", "<Id>+86-23800138000</Id>", "BE23", "CdtrAcct/Prxy"),
        ("<Id>+86-13800138000</Id>", "<Id>+8613800138000</Id>", "BE23", "CdtrAcct/Prxy"),
        (
            "<MmbId>104584000003</MmbId>",
            "<MmbId>10458400003</MmbId>",
            "RC10",
            "CdtrAgt/FinInstnId/ClrSysMmbId",
        ),
        (
            "<ClrSysId><Cd>CNAPS</Cd></ClrSysId>",
            "<ClrSysId><Cd>USABA</Cd></ClrSysId>",
            "RC10",
            "CdtrAgt/FinInstnId/ClrSysMmbId",
        ),
        (
            "<UETR>3f0c1f0e-9a55-4b6e-8a3e-1c2d3e4f5a6b</UETR>",
            "<UETR>3f0c1f0e-9a55-1b6e-8a3e-1c2d3e4f5a6b</UETR>",
            "FF01",
            "PmtId/UETR",
        ),
        ("<Id>01287500123456</Id>", "<Id>0128-7500-1234</Id>", "AC01", "DbtrAcct"),
    ],
)
def test_identifiers_are_checked(old: str, new: str, code: str, path: str) -> None:
    message = decode("hk-fps", HK_SINGLE, old, new, -1)
    assert (code, f"CdtTrfTxInf[1]/{path}") in only_tx_errors(message, 0)


def test_proxy_only_creditor_may_leave_out_the_creditor_agent() -> None:
    data = fixture(HK_SINGLE).decode()
    start, end = data.index("<CdtrAgt>"), data.index("</CdtrAgt>") + len("</CdtrAgt>")
    message = get_adapter("hk-fps").decode_transfers((data[:start] + data[end:]).encode())
    (tx,) = message.txs
    assert tx.transfer is not None
    assert (tx.transfer.creditor_agent, tx.transfer.destination_scheme) == (None, None)


def test_without_proxy_the_creditor_agent_is_required() -> None:
    data = fixture(HK_MULTI).decode()
    third = data.index("HSBC-E2E-3")
    start = data.index("<CdtrAgt>", third)
    end = data.index("</CdtrAgt>", third) + len("</CdtrAgt>")
    message = get_adapter("hk-fps").decode_transfers((data[:start] + data[end:]).encode())
    assert ("RC10", "CdtTrfTxInf[3]/CdtrAgt") in only_tx_errors(message, 2)


def test_duplicate_end_to_end_ids_reject_every_copy() -> None:
    message = decode("hk-fps", HK_MULTI, "HSBC-E2E-3", "HSBC-E2E-1")
    assert message.error is None
    assert [r.code for r in message.txs[0].errors] == [Reason.AM05]
    assert [r.code for r in message.txs[2].errors] == [Reason.AM05]
    assert message.txs[2].errors[0].path == "CdtTrfTxInf[3]/PmtId/EndToEndId"
    assert message.txs[1].transfer is not None


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        ("<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", "GrpHdr/NbOfTxs", "holds 3"),
        ("<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>three</NbOfTxs>", "GrpHdr/NbOfTxs", "NbOfTxs"),
        (
            "<CtrlSum>12600.75</CtrlSum>",
            "<CtrlSum>12600.76</CtrlSum>",
            "GrpHdr/CtrlSum",
            "12600.75",
        ),
        ("<MsgId>HK004-20250622-000042</MsgId>", "", "GrpHdr/MsgId", "required"),
        (
            "<CreDtTm>2025-06-22T14:05:00.250+08:00</CreDtTm>",
            "<CreDtTm>22/06/2025</CreDtTm>",
            "GrpHdr/CreDtTm",
            "date-time",
        ),
        (
            "<SttlmMtd>CLRG</SttlmMtd>",
            "<SttlmMtd>INDA</SttlmMtd>",
            "GrpHdr/SttlmInf/SttlmMtd",
            "CLRG",
        ),
        ("<GrpHdr>", "<GrpHdr><BtchBookg>true</BtchBookg>", "GrpHdr/BtchBookg", "not supported"),
    ],
)
def test_a_bad_group_header_rejects_the_message(old: str, new: str, path: str, words: str) -> None:
    message = decode("hk-fps", HK_MULTI, old, new)
    assert message.error is not None
    assert (message.error.code, message.error.path) == (Reason.FF01, path)
    assert words in message.error.message
    assert message.transfers == []


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("pacs.008.001.08", "pacs.008.001.02", "Document"),
        ("urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08", "urn:example:other", "Document"),
        ("<FIToFICstmrCdtTrf>", "<FIToFICstmrCdtTrfX>", ""),
    ],
)
def test_wrong_namespace_version_or_root_is_refused(old: str, new: str, path: str) -> None:
    message = decode("hk-fps", HK_MULTI, old, new, count=-1)
    assert message.error is not None and message.error.code == Reason.FF01
    assert message.txs == ()


def test_a_message_of_another_scheme_is_refused() -> None:
    assert get_adapter("cn-ibps").decode_transfers(fixture(HK_MULTI)).error is not None
    message = get_adapter("hk-fps").decode_transfers(fixture(IBPS_MULTI))
    assert message.error is not None and message.error.code == Reason.FF01


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>4</NbOfTxs>", "GrpHdr/NbOfTxs"),
        (
            '<CtrlSum Ccy="CNY">52345.67</CtrlSum>',
            '<CtrlSum Ccy="CNY">52345.68</CtrlSum>',
            "GrpHdr/CtrlSum",
        ),
        (
            '<CtrlSum Ccy="CNY">52345.67</CtrlSum>',
            '<CtrlSum Ccy="HKD">52345.67</CtrlSum>',
            "GrpHdr/CtrlSum",
        ),
        ("<SysCd>IBPS</SysCd>", "<SysCd>BEPS</SysCd>", "GrpHdr/SysCd"),
        (
            "<InstgDrctPty>105584000005</InstgDrctPty>",
            "<InstgDrctPty>105584000006</InstgDrctPty>",
            "GrpHdr/InstgPty/InstgDrctPty",
        ),
        ("<MsgId>2025062211000042</MsgId>", "<MsgId>2025062211000043</MsgId>", "GrpHdr/MsgId"),
        (
            "<InstdDrctPty>999100000019</InstdDrctPty>",
            "<InstdDrctPty>9991</InstdDrctPty>",
            "GrpHdr/InstdPty/InstdDrctPty",
        ),
        ("{H:02", "{H:03", "{H:}/version"),
        (
            "IBPS20250622110000XMLibps.101.001.01",
            "IBPS20250622110000XMLibps.103.001.01",
            "{H:}/msg_type",
        ),
        ("{S:MEUC", "{S:ME*C", "{S:}"),
    ],
)
def test_ibps_envelope_and_group_header_problems_reject_the_message(
    old: str, new: str, path: str
) -> None:
    message = decode("cn-ibps", IBPS_MULTI, old, new)
    assert message.error is not None and message.error.code == Reason.FF01
    assert path in [r.path for r in message.rejections]
    assert message.transfers == []


@pytest.mark.parametrize(
    ("old", "new", "ctrl_sum", "code", "path"),
    [
        ('<Amt Ccy="CNY">40000.00</Amt>', '<Amt Ccy="HKD">40000.00</Amt>', "", "AM03", "Amt/@Ccy"),
        ('<Amt Ccy="CNY">40000.00</Amt>', '<Amt Ccy="CNY">0</Amt>', "12345.67", "AM01", "Amt"),
        (
            '<Amt Ccy="CNY">40000.00</Amt>',
            '<Amt Ccy="CNY">40000.001</Amt>',
            "52345.671",
            "AM12",
            "Amt",
        ),
        ("<Id>91440300MA5DC12341</Id>", "<Id>91440300MA5DC12342</Id>", "", "RR04", "Dbtr/Id"),
        ("<Nm>Harbour Trading Limited</Nm>", f"<Nm>{'港' * 61}</Nm>", "", "FF01", "Cdtr/Nm"),
        ("<TxId>CCB20250622000102</TxId>", "", "", "FF01", "TxId"),
        (
            "4567890</Id></Othr></Id></DbtrAcct>\n      <DbtrAgt><BrnchId><Id>105584000005</Id>",
            "4567890</Id></Othr></Id></DbtrAcct>\n      <DbtrAgt><BrnchId><Id>1055840</Id>",
            "",
            "FF01",
            "DbtrAgt/BrnchId/Id",
        ),
    ],
)
def test_ibps_bad_transaction_rejects_itself_only(
    old: str, new: str, ctrl_sum: str, code: str, path: str
) -> None:
    """`ctrl_sum`: the CtrlSum a sender would write for the changed amounts."""
    also = [('<CtrlSum Ccy="CNY">52345.67<', f'<CtrlSum Ccy="CNY">{ctrl_sum}<')] if ctrl_sum else []
    message = decode("cn-ibps", IBPS_MULTI, old, new, 1, *also)
    assert (code, f"CstmrCdtTrfInf[2]/{path}") in only_tx_errors(message, 1)


def test_all_problems_of_a_transaction_are_listed() -> None:
    message = decode(
        "hk-fps",
        HK_MULTI,
        '<IntrBkSttlmAmt Ccy="HKD">2500</IntrBkSttlmAmt>\n      <ChrgBr>DEBT</ChrgBr>',
        '<IntrBkSttlmAmt Ccy="HKD">0</IntrBkSttlmAmt>\n      <ChrgBr>NONE</ChrgBr>',
        1,
        NO_CTRL_SUM,
    )
    assert {code for code, _ in only_tx_errors(message, 1)} == {"AM01", "FF01"}


def test_a_repeated_bad_value_is_reported_in_every_transaction() -> None:
    """The debtor agent appears in all three transactions: each names its own path."""
    message = decode("hk-fps", HK_MULTI, "<MmbId>004</MmbId>", "<MmbId>04</MmbId>", -1)
    assert [[(r.code.value, r.path) for r in tx.errors] for tx in message.txs] == [
        [("FF01", f"CdtTrfTxInf[{n}]/DbtrAgt/FinInstnId/ClrSysMmbId")] for n in (1, 2, 3)
    ]


def test_a_repeated_good_value_decodes_in_every_transaction() -> None:
    message = decode("hk-fps", HK_MULTI)
    agents = {tx.transfer.debtor_agent for tx in message.txs if tx.transfer}
    assert len(message.transfers) == 3 and len(agents) == 1
