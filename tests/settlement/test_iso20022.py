"""camt.053.001.08 statements and pacs.009.001.08 instructions: valid against the official
XSDs whatever the person data holds, and their control totals recompute on read."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from lxml import etree

from clearing.money import Money
from clearing.settlement_files import CAMT053_NS, PACS009_NS

from . import factory as f

NS_C = {"c": CAMT053_NS}
NS_P = {"p": PACS009_NS}


def _dec(el) -> Decimal:
    return Decimal(el.text)


def _check_statement(path: Path, totals: dict) -> None:
    doc = etree.parse(str(path))
    f.schema("camt.053.001.08.xsd").validate(str(path))
    stmt = doc.find("c:BkToCstmrStmt/c:Stmt", NS_C)
    ccy = stmt.findtext("c:Acct/c:Ccy", namespaces=NS_C)
    entries = stmt.findall("c:Ntry", NS_C)
    debits = sum(
        _dec(e.find("c:Amt", NS_C))
        for e in entries
        if e.findtext("c:CdtDbtInd", namespaces=NS_C) == "DBIT"
    )
    credits = sum(
        _dec(e.find("c:Amt", NS_C))
        for e in entries
        if e.findtext("c:CdtDbtInd", namespaces=NS_C) == "CRDT"
    )
    summary = stmt.find("c:TxsSummry", NS_C)
    assert int(summary.findtext("c:TtlNtries/c:NbOfNtries", namespaces=NS_C)) == len(entries)
    assert Decimal(summary.findtext("c:TtlNtries/c:Sum", namespaces=NS_C)) == debits + credits
    kinds = [e.findtext("c:CdtDbtInd", namespaces=NS_C) for e in entries]
    assert int(summary.findtext("c:TtlDbtNtries/c:NbOfNtries", namespaces=NS_C)) == kinds.count(
        "DBIT"
    )
    assert int(summary.findtext("c:TtlCdtNtries/c:NbOfNtries", namespaces=NS_C)) == kinds.count(
        "CRDT"
    )
    assert Decimal(summary.findtext("c:TtlDbtNtries/c:Sum", namespaces=NS_C)) == debits
    assert Decimal(summary.findtext("c:TtlCdtNtries/c:Sum", namespaces=NS_C)) == credits
    closing = stmt.findall("c:Bal", NS_C)[1]
    sign = -1 if closing.findtext("c:CdtDbtInd", namespaces=NS_C) == "DBIT" else 1
    assert sign * _dec(closing.find("c:Amt", NS_C)) == credits - debits
    pid = path.name.rsplit(".", 2)[0]
    t = totals[(pid, ccy)]
    assert Money.parse(str(debits), ccy) == t.gross_debits
    assert Money.parse(str(credits), ccy) == t.gross_credits


def _check_instructions(path: Path, totals: dict) -> None:
    f.schema("pacs.009.001.08.xsd").validate(str(path))
    doc = etree.parse(str(path))
    txs = doc.findall("p:FICdtTrf/p:CdtTrfTxInf", NS_P)
    hdr = doc.find("p:FICdtTrf/p:GrpHdr", NS_P)
    ccy = path.stem
    assert int(hdr.findtext("p:NbOfTxs", namespaces=NS_P)) == len(txs)
    amounts = [_dec(tx.find("p:IntrBkSttlmAmt", NS_P)) for tx in txs]
    assert Decimal(hdr.findtext("p:CtrlSum", namespaces=NS_P)) == sum(amounts)
    moving = {pid: t for (pid, c), t in totals.items() if c == ccy and t.net.minor}
    assert len(txs) == len(moving)
    for tx, amount in zip(txs, amounts, strict=True):
        debtor = tx.findtext("p:Dbtr/p:FinInstnId/p:ClrSysMmbId/p:MmbId", namespaces=NS_P)
        creditor = tx.findtext("p:Cdtr/p:FinInstnId/p:ClrSysMmbId/p:MmbId", namespaces=NS_P)
        member = debtor or creditor
        pid = next(p for p in moving if f"{100 + int(p[-3:]):03d}" == member)
        net = moving.pop(pid).net
        assert (debtor is not None) == (net.minor < 0), "payers are debited, receivers credited"
        assert Money.parse(str(amount), ccy).minor == abs(net.minor)
    assert not moving


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f.transfer_sets())
def test_statements_and_instructions_are_schema_valid_and_add_up(key, data) -> None:
    parts, rows = data
    window = f.window_of(parts, rows)
    totals = {(t.participant_id, t.currency): t for t in window.totals}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w"
        f.export(window, rows, out, key)
        statements = sorted((out / "camt053").glob("*.xml")) if rows else []
        assert len(statements) == len(totals)
        for path in statements:
            _check_statement(path, totals)
        for path in sorted((out / "pacs009").glob("*.xml")) if (out / "pacs009").exists() else []:
            _check_instructions(path, totals)


def test_statement_of_a_plain_window_is_valid_and_carries_references(key, tmp_path) -> None:
    parts = f.participants(3)
    rows = [f.row(i, parts[i % 3].id, parts[(i + 1) % 3].id, 1000 + i) for i in range(9)]
    rows.append(f.row(9, parts[0].id, parts[2].id, 500, end_to_end_id="E2E-long-uuid"))
    uuid_row = f.row(10, parts[0].id, parts[1].id, 700)._replace(
        transfer_id="3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
    )
    rows.append(uuid_row)
    window = f.window_of(parts, rows)
    f.export(window, rows, tmp_path / "w", key)
    path = tmp_path / "w" / "camt053" / f"{parts[0].id}.HKD.xml"
    f.schema("camt.053.001.08.xsd").validate(str(path))
    doc = etree.parse(str(path))
    refs = doc.findall(".//c:Ntry//c:Refs/c:TxId", NS_C)
    assert "3f2b8c1e9a4d4e6f8b7a1c2d3e4f5a6b" in {r.text for r in refs}
    assert "E2E-long-uuid" in {e.text for e in doc.findall(".//c:EndToEndId", NS_C)}
    detail = (tmp_path / "w" / "details" / f"{parts[0].id}.csv").read_text()
    assert "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b" in detail
