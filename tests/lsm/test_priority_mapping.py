"""Transfers carry their liquidity-saving priority through every way in: pacs.008
PmtTpInf/InstrPrty (hk-fps, mo-fps) both ways, the canonical JSON, and not through IBPS,
whose modelled ibps.101 has no such field (documented in docs/schemes/cn-ibps.md)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from lxml import etree

from adapters.registry import get_adapter
from clearing.lsm import Priority
from clearing.reasons import Reason
from gateway import transfer_json
from tests.adapters.helpers import HKT, sample_transfer

WHEN = datetime(2025, 6, 22, 10, 21, tzinfo=HKT)
PACS = ("hk-fps", "mo-fps")


def _encoded(scheme: str, priority: str) -> bytes:
    t = sample_transfer(scheme, priority=priority)
    return get_adapter(scheme).encode_transfer(t, msg_id="M-PRIO", created_at=WHEN)


def _instr_prty(data: bytes) -> list[str]:
    doc = etree.fromstring(data[data.index(b"<?xml") :])
    return [e.text for e in doc.iter("{*}InstrPrty")]


@pytest.mark.parametrize("scheme", PACS)
@pytest.mark.parametrize(("priority", "written"), [("urgent", ["HIGH"]), ("normal", [])])
def test_pacs_priority_round_trips(scheme: str, priority: str, written: list[str]) -> None:
    data = _encoded(scheme, priority)
    assert _instr_prty(data) == written
    message = get_adapter(scheme).decode_transfers(data)
    assert message.rejections == []
    [tx] = message.txs
    assert tx.transfer is not None and tx.transfer.priority == priority


@pytest.mark.parametrize("scheme", PACS)
@pytest.mark.parametrize(("code", "priority"), [("HIGH", "urgent"), ("NORM", "normal")])
def test_pacs_instruction_priority_codes_decode(scheme: str, code: str, priority: str) -> None:
    data = _encoded(scheme, "urgent").replace(b">HIGH<", f">{code}<".encode())
    [tx] = get_adapter(scheme).decode_transfers(data).txs
    assert tx.transfer is not None and tx.transfer.priority == priority
    assert Priority(tx.transfer.priority)  # a value the resolver knows


@pytest.mark.parametrize("scheme", PACS)
def test_pacs_unknown_instruction_priority_is_refused_with_its_path(scheme: str) -> None:
    data = _encoded(scheme, "urgent").replace(b">HIGH<", b">LOW<")
    [tx] = get_adapter(scheme).decode_transfers(data).txs
    assert tx.transfer is None
    assert [(e.code, e.path) for e in tx.errors] == [
        (Reason.FF01, "CdtTrfTxInf[1]/PmtTpInf/InstrPrty")
    ]


def test_ibps_does_not_carry_priority() -> None:
    data = _encoded("cn-ibps", "urgent")
    [tx] = get_adapter("cn-ibps").decode_transfers(data).txs
    assert tx.transfer is not None and tx.transfer.priority == "normal"


@pytest.mark.parametrize("priority", ["urgent", "normal"])
def test_canonical_json_carries_priority(priority: str) -> None:
    t = sample_transfer("hk-fps", priority=priority)
    back = transfer_json.from_dict(json.loads(transfer_json.dumps(t)))
    assert back.priority == priority
