"""Windows and transfer rows for the settlement tests, with a slow, obvious reference model of
the totals the clearing engine would hand over."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import strategies as st

from clearing.money import Money
from clearing.settlement_files import (
    Participant,
    PositionTotal,
    SettlementSystem,
    TransferRow,
    Window,
    booking_time,
)

XSD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "iso20022"
OPENED = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)
CLOSED = datetime(2025, 7, 1, 3, 0, tzinfo=UTC)
GENERATED = datetime(2025, 7, 1, 3, 0, 5, tzinfo=UTC)
SYSTEMS = (
    SettlementSystem("HKD", "HK CHATS", "Hong Kong dollar CHATS", "BAYGATE-HKD"),
    SettlementSystem("CNY", "CNAPS HVPS", "CNAPS high value payment system", "BAYGATE-CNY"),
    SettlementSystem("MOP", "Macau RTGS", "Macau real-time gross settlement", "BAYGATE-MOP"),
)
SCHEMES = ("hk-fps", "cn-ibps", "mo-fps")


def xsd_path(name: str) -> Path:
    """The official XSD; tests skip only when the folder is absent outside CI."""
    path = XSD_DIR / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{path} is required in CI")
        pytest.skip(f"{XSD_DIR} absent")
    return path


def participants(n: int) -> tuple[Participant, ...]:
    return tuple(
        Participant(f"bank-{i:03d}", f"Bank {i} & Sons <Ltd>", "HKICL", f"{100 + i:03d}")
        for i in range(n)
    )


def reference_totals(
    parts: Sequence[Participant], rows: Sequence[TransferRow]
) -> tuple[PositionTotal, ...]:
    """Every participant's totals in every currency it touched, summed one row at a time."""
    acc: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        ccy = r.currency
        debit = acc.setdefault((r.payer_id, ccy), [0, 0, 0, 0])
        debit[0] += r.amount_minor
        debit[2] += 1
        credit = acc.setdefault((r.payee_id, ccy), [0, 0, 0, 0])
        credit[1] += r.amount_minor
        credit[3] += 1
    return tuple(
        PositionTotal(
            participant_id=pid,
            gross_debits=Money(d, ccy),
            gross_credits=Money(c, ccy),
            net=Money(c - d, ccy),
            debit_count=nd,
            credit_count=nc,
        )
        for (pid, ccy), (d, c, nd, nc) in sorted(acc.items())
    )


def window_of(
    parts: Sequence[Participant], rows: Sequence[TransferRow], wid: str = "w-20250701-01"
) -> Window:
    return Window(
        window_id=wid,
        opened_at=OPENED,
        closed_at=CLOSED,
        participants=tuple(parts),
        totals=reference_totals(parts, rows),
        systems=SYSTEMS,
    )


def row(
    i: int,
    payer: str,
    payee: str,
    minor: int,
    ccy: str = "HKD",
    *,
    debtor_name: str = "CHAN Tai Man",
    debtor_account: str = "012-345678-001",
    creditor_name: str = "WONG Siu Ming",
    creditor_account: str = "6222020200112233",
    end_to_end_id: str | None = None,
) -> TransferRow:
    at = OPENED + timedelta(seconds=i)
    return TransferRow(
        transfer_id=f"tr-{i:08d}",
        end_to_end_id=end_to_end_id if end_to_end_id is not None else f"E2E{i:010d}",
        created_at=booking_time(at),
        committed_at=booking_time(at + timedelta(milliseconds=250)),
        payer_id=payer,
        payee_id=payee,
        amount_minor=minor,
        currency=ccy,
        source_scheme=SCHEMES[i % 3],
        destination_scheme=SCHEMES[(i // 3) % 3],
        debtor_name=debtor_name,
        debtor_account=debtor_account,
        creditor_name=creditor_name,
        creditor_account=creditor_account,
    )


def source(rows: Sequence[TransferRow], batch_max: int = 3):
    """rows_for(participant_ids) over an in-memory list, in small batches."""

    async def rows_for(members: frozenset[str] | None) -> AsyncIterator[list[TransferRow]]:
        mine = [
            r for r in rows if members is None or r.payer_id in members or r.payee_id in members
        ]
        for i in range(0, len(mine), batch_max):
            yield mine[i : i + batch_max]

    return rows_for


# Text that stresses XML and CSV: markup, quotes, commas, newlines, CJK, formula starts, the
# separator of the plain-path scan, DEL, and characters XML 1.0 cannot carry.
tricky_text = st.text(
    alphabet=st.sampled_from(list("aZ9 &<>\"',;|\n\t=+-@陳大文\x01\x1f\x7f\ufffe")), max_size=160
)


@st.composite
def transfer_sets(draw, participants_max: int = 5, rows_max: int = 25):
    n = draw(st.integers(2, participants_max))
    parts = participants(n)
    rows = []
    for i in range(draw(st.integers(0, rows_max))):
        payer, payee = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        rows.append(
            row(
                i,
                parts[payer].id,
                parts[payee].id,
                draw(st.integers(1, 10**9)),
                draw(st.sampled_from(["HKD", "CNY", "MOP"])),
                debtor_name=draw(tricky_text),
                debtor_account=draw(tricky_text),
                creditor_name=draw(tricky_text),
                creditor_account=draw(tricky_text),
            )
        )
    return parts, rows


def export(window: Window, rows: Sequence[TransferRow], dest: Path, key, **kw):
    """Run the export to completion from a synchronous test."""
    import asyncio

    from gateway.settlement_export import export_window

    kw.setdefault("now", lambda: GENERATED)
    return asyncio.run(export_window(window, source(rows), dest, key=key, **kw))


_schemas: dict[str, object] = {}


def schema(name: str):
    """The official XSD, loaded once per run."""
    import xmlschema

    if name not in _schemas:
        _schemas[name] = xmlschema.XMLSchema(str(xsd_path(name)))
    return _schemas[name]
