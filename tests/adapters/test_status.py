"""Status reports to senders and status replies from receiving providers."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import AdapterError, StatusReport
from adapters.registry import get_adapter
from clearing.model import TxStatus
from clearing.reasons import Reason
from tests.adapters.helpers import HKT, SCHEMES, fixture, ids35, texts

WHEN = datetime(2025, 6, 22, 14, 5, 1, tzinfo=HKT)
MESSAGE_MAX = {"hk-fps": 315, "mo-fps": 315, "cn-ibps": 256}

tx_reports = st.builds(
    StatusReport,
    original_msg_id=st.none() | ids35,
    original_end_to_end_id=ids35,
    original_tx_id=st.none() | ids35,
    status=st.sampled_from(TxStatus),
    reason=st.none() | st.sampled_from(Reason),
    message=st.none() | texts(400),
    gateway_id=st.none() | ids35,
)
group_reports = st.builds(
    StatusReport,
    original_msg_id=st.none(),
    original_end_to_end_id=st.none(),
    original_tx_id=st.none(),
    status=st.sampled_from(TxStatus),
    reason=st.none() | st.sampled_from(Reason),
    message=st.none() | texts(100),
)


def expected(r: StatusReport, group_original: str | None, scheme: str) -> StatusReport:
    """Documented rules: the message is cut to the scheme's room; the original message id
    falls back to the report's group; the group status carries no gateway id."""
    return StatusReport(
        original_msg_id=r.original_msg_id or group_original,
        original_end_to_end_id=r.original_end_to_end_id,
        original_tx_id=r.original_tx_id,
        status=r.status,
        reason=r.reason,
        message=r.message[: MESSAGE_MAX[scheme]] if r.message else None,
        gateway_id=None if r.is_group else r.gateway_id,
    )


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=80, deadline=None)
@given(
    reports=st.lists(tx_reports, max_size=5),
    group=st.none() | group_reports,
    original=st.none() | ids35,
)
def test_status_reports_round_trip(
    scheme: str, reports: list[StatusReport], group: StatusReport | None, original: str | None
) -> None:
    every = ([group] if group else []) + reports
    if not every:
        return
    adapter = get_adapter(scheme)
    data = adapter.encode_status_report(
        every, msg_id="STS-1", created_at=WHEN, original_msg_id=original
    )
    assert adapter.decode_status_reply(data) == [expected(r, original, scheme) for r in every]


def test_hk_reply_golden() -> None:
    reports = get_adapter("hk-fps").decode_status_reply(fixture("hk-fps/pacs002_reply.xml"))
    assert reports == [
        StatusReport("BG-OUT-000123", "HSBC-E2E-1", "BG-7f3a", TxStatus.ACSC),
        StatusReport(
            "BG-OUT-000123",
            "HSBC-E2E-9",
            None,
            TxStatus.RJCT,
            Reason.AC04,
            "Account closed on 2025-05-31",
        ),
    ]


def test_mo_reply_golden_with_an_unknown_reason_reads_as_narrative() -> None:
    (report,) = get_adapter("mo-fps").decode_status_reply(fixture("mo-fps/pacs002_reply.xml"))
    assert report.is_group and report.status == TxStatus.RJCT
    assert report.reason == Reason.NARR
    assert report.message == "MS03: Service window closed"


def test_ibps_receipt_golden() -> None:
    reports = get_adapter("cn-ibps").decode_status_reply(fixture("cn-ibps/ibps102_reply.txt"))
    assert reports == [
        StatusReport("BG-OUT-000124", "NB-E2E-0001", "NB-TX-0001", TxStatus.ACSC),
        StatusReport(
            "BG-OUT-000124",
            "NB-E2E-0002",
            "NB-TX-0002",
            TxStatus.RJCT,
            Reason.AC01,
            "收款人账号不存在",
        ),
    ]


def test_other_iso_statuses_read_as_their_nearest_equivalent() -> None:
    data = fixture("hk-fps/pacs002_reply.xml").replace(
        b"<TxSts>ACSC</TxSts>", b"<TxSts>ACCC</TxSts>"
    )
    assert get_adapter("hk-fps").decode_status_reply(data)[0].status == TxStatus.ACSC


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<TxSts>ACSC</TxSts>", b"<TxSts>DONE</TxSts>"),
        (b"<TxSts>ACSC</TxSts>", b""),
        (b"<OrgnlEndToEndId>HSBC-E2E-9</OrgnlEndToEndId>", b""),
        (b"pacs.002.001.10", b"pacs.002.001.03"),
    ],
)
def test_malformed_replies_raise_adapter_error(old: bytes, new: bytes) -> None:
    data = fixture("hk-fps/pacs002_reply.xml").replace(old, new)
    with pytest.raises(AdapterError) as err:
        get_adapter("hk-fps").decode_status_reply(data)
    assert err.value.rejection.code == Reason.FF01


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<PrcSts>PR02</PrcSts>", b"<PrcSts>PR77</PrcSts>"),
        (b"ibps.102.001.01     ", b"ibps.101.001.01     "),
    ],
)
def test_malformed_ibps_receipts_raise_adapter_error(old: bytes, new: bytes) -> None:
    data = fixture("cn-ibps/ibps102_reply.txt").replace(old, new, 1)
    with pytest.raises(AdapterError):
        get_adapter("cn-ibps").decode_status_reply(data)


def test_unknown_elements_in_a_reply_are_tolerated() -> None:
    """A reply only needs to say which transfer and what status; extra detail is not an error."""
    data = fixture("hk-fps/pacs002_reply.xml")
    assert b"AccptncDtTm" in data
    assert get_adapter("hk-fps").decode_status_reply(data)[0].status == TxStatus.ACSC


def test_a_report_for_an_unreadable_message_has_no_original_id() -> None:
    adapter = get_adapter("hk-fps")
    group = StatusReport(
        None, None, None, TxStatus.RJCT, Reason.FF01, "message is not well-formed XML"
    )
    data = adapter.encode_status_report(
        [group], msg_id="STS-2", created_at=WHEN, original_msg_id=None
    )
    assert b"<OrgnlMsgId>NOTPROVIDED</OrgnlMsgId>" in data
    assert adapter.decode_status_reply(data) == [group]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_message_with_characters_xml_cannot_carry_is_still_reported(scheme: str) -> None:
    adapter = get_adapter(scheme)
    report = StatusReport("M1", "E2E-1", None, TxStatus.RJCT, Reason.FF01, "bad byte \x00 here")
    data = adapter.encode_status_report(
        [report], msg_id="STS-3", created_at=WHEN, original_msg_id="M1"
    )
    (back,) = adapter.decode_status_reply(data)
    assert back.message == "bad byte \ufffd here"
