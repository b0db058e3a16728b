"""`baygate validate` / `baygate translate` behaviour, through the functions the CLI wires."""

from __future__ import annotations

import re

from adapters.cli_support import translate_file, validate_file
from adapters.registry import get_adapter
from tests.adapters.helpers import fixture

LINE = re.compile(r"^[A-Z]{2}\d{2} \S+: .+$")


def test_validate_counts_transactions_of_a_valid_file() -> None:
    assert validate_file("hk-fps", fixture("hk-fps/pacs008_multi.xml")) == (
        0,
        ["OK 3 transactions"],
    )
    assert validate_file("cn-ibps", fixture("cn-ibps/ibps101_southbound_single.txt")) == (
        0,
        ["OK 1 transactions"],
    )


def test_validate_lists_one_line_per_problem() -> None:
    data = (
        fixture("hk-fps/pacs008_multi.xml")
        .replace(b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>")
        .replace(b"<MmbId>003</MmbId>", b"<MmbId>3</MmbId>")
        .replace(b"<Id>K6543219</Id>", b"<Id>K6543218</Id>")
    )
    code, lines = validate_file("hk-fps", data)
    assert code == 1
    assert lines == [
        "FF01 GrpHdr/NbOfTxs: NbOfTxs is 4 but the message holds 3",
        "RC10 CdtTrfTxInf[2]/CdtrAgt/FinInstnId/ClrSysMmbId: HKNCC clearing code '3' must be 3 digits",
        "RR04 CdtTrfTxInf[3]/Dbtr/Id/PrvtId/Othr: HKID has a wrong check character",
    ]
    assert all(LINE.match(line) for line in lines)


def test_validate_refuses_unreadable_input_with_one_line() -> None:
    code, lines = validate_file("mo-fps", b"\xff\xfe<Document/>")
    assert code == 1 and len(lines) == 1 and lines[0].startswith("FF01 ")


def test_unknown_scheme_is_a_usage_error() -> None:
    assert validate_file("sg-fast", b"")[0] == 2
    code, out, lines = translate_file("hk-fps", "sg-fast", fixture("hk-fps/pacs008_multi.xml"))
    assert (code, out) == (2, b"") and "sg-fast" in lines[0]


def test_translate_writes_the_target_message() -> None:
    code, out, lines = translate_file(
        "cn-ibps", "hk-fps", fixture("cn-ibps/ibps101_multi_signed.txt")
    )
    assert (code, lines) == (0, [])
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Document')
    assert b"\n  <FIToFICstmrCdtTrf>" in out  # indented for reading
    decoded = get_adapter("hk-fps").decode_transfers(out)
    assert decoded.rejections == [] and len(decoded.txs) == 3


def test_translate_into_ibps_keeps_the_envelope_line() -> None:
    code, out, _ = translate_file(
        "hk-fps", "cn-ibps", fixture("hk-fps/pacs008_northbound_single.xml")
    )
    assert code == 0 and out.startswith(b"{H:02")
    assert get_adapter("cn-ibps").decode_transfers(out).rejections == []


def test_translate_failure_gives_reason_lines_and_no_output() -> None:
    code, out, lines = translate_file("mo-fps", "hk-fps", fixture("mo-fps/pacs008_single.xml"))
    assert (code, out) == (1, b"")
    assert lines == [
        "AM03 MO-E2E-0001/amount: hk-fps carries CNY, HKD, not MOP (no FX in translation)"
    ]
