"""The export from PostgreSQL (what `baygate settlement export` runs) writes exactly the files
the in-memory reference source gives for the same legs, whatever the person data holds: text
that COPY escapes (tabs, newlines, backslashes), markup, Chinese, formula starts; transfers with
a currency conversion (two legs on one line); other windows and unfinished transfers left out.
The folder verifies and the window reconciles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from clearing import settlement_files as sf
from gateway import settlement_export, settlement_service
from gateway.reconcile import reconcile
from gateway.settlement_export import export_window, verify_settlement_dir

from . import factory as f

WINDOW = 41
PARTS = ("bank-a", "bank-b", "fx-c", "bank-d")
NAMES = (
    "CHAN\tTai\nMan \\ & <Co>",
    "陳大文",
    "=HYPERLINK(1)",
    'O\'Brien, "Jr"\r',
    "WONG Siu Ming",
    "\\N",
    "x\x01y\\t|=1",
)
T0 = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)


def _transfers() -> list[dict]:
    """Committed transfers of WINDOW (some with a conversion leg), in booking order."""
    out = []
    for i in range(14):
        payer, payee = PARTS[i % 4], PARTS[(i + 1 + i // 4) % 4]
        if payer == payee:
            payee = PARTS[(i + 2) % 4]
        fx = i % 5 == 2
        payee2 = PARTS[(PARTS.index(payee) + 1) % 4] if fx else None
        if payee2 == payee:
            payee2 = None
        out.append({
            "id": f"tr-{i:04d}" if i % 3 else f"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f{i:04d}",
            "e2e": f"E2E-{i}",
            "payer": payer, "payee": payee, "ccy": ("HKD", "CNY", "MOP")[i % 3],
            "minor": 1_000 + 37 * i,
            "payee2": payee2, "ccy2": "CNY" if payee2 else None, "minor2": 900 + i if payee2 else None,
            "created": T0 + timedelta(seconds=i, microseconds=123_457 * (i % 2)),
            "finished": T0 + timedelta(seconds=i, milliseconds=250 + i),
            "src": f.SCHEMES[i % 3], "dst": f.SCHEMES[(i // 3) % 3],
            "dn": NAMES[i % 7], "da": f"012-{i:06d}", "cn": NAMES[(i + 3) % 7],
            "ca": None if i % 4 == 1 else f"6222\\{i:08d}", "proxy": f"+852-9{i:07d}",
        })  # fmt: skip
    return out


def _json(t: dict) -> str:
    account = {
        "number": t["ca"],
        "proxy": None if t["ca"] else {"type": "MOBN", "value": t["proxy"]},
    }
    return json.dumps({
        "id": t["id"], "end_to_end_id": t["e2e"],
        "debtor": {"name": t["dn"], "id": None}, "debtor_account": {"number": t["da"], "proxy": None},
        "creditor": {"name": t["cn"], "id": None}, "creditor_account": account,
    })  # fmt: skip


def _legs(t: dict) -> list[sf.TransferRow]:
    """The reference: the legs a window query must yield for one transfer."""
    times = (sf.booking_time(t["created"]), sf.booking_time(t["finished"]))
    person = (t["dn"], t["da"], t["cn"], t["ca"] or t["proxy"])
    rows = [sf.TransferRow(t["id"], t["e2e"], *times, t["payer"], t["payee"], t["minor"], t["ccy"],
                           t["src"], t["dst"], *person)]  # fmt: skip
    if t["payee2"]:
        rows.append(sf.TransferRow(t["id"], t["e2e"], *times, t["payee"], t["payee2"],
                                   t["minor2"], t["ccy2"], t["src"], t["dst"], *person))  # fmt: skip
    return rows


async def _seed(conn, transfers: list[dict]) -> None:
    await conn.executemany(
        "INSERT INTO settlement_systems (currency, code, name) VALUES ($1, $2, $3)",
        [(s.currency, s.code, s.name) for s in f.SYSTEMS],
    )
    await conn.executemany(
        "INSERT INTO participants (id, name, scheme, clearing_system, clearing_code,"
        " public_key_ed25519) VALUES ($1, $2, 'hk-fps', 'HKICL', $3, 'AAAA')",
        [(p, f"Bank {p} & <Sons>", f"{100 + i:03d}") for i, p in enumerate(PARTS)],
    )
    await conn.execute(
        "INSERT INTO clearing_windows (id, state, opened_at, closed_at) VALUES"
        " ($1, 'CLOSED', $2, $3), ($4, 'CLOSED', $2, $3)",
        WINDOW, T0, T0 + timedelta(hours=2), WINDOW + 1,
    )  # fmt: skip
    base = _transfers()
    others = [  # another window's transfer, and one that never committed
        {**base[0], "id": "tr-other-window", "e2e": "E2E-o", "window": WINDOW + 1},
        {**base[1], "id": "tr-aborted", "e2e": "E2E-x", "state": "ABORTED", "window": None},
    ]
    totals: dict[tuple[str, str], list[int]] = {}
    for t in [*transfers, *others]:
        state, window = t.get("state", "COMMITTED"), t.get("window", WINDOW)
        await conn.execute(
            "INSERT INTO clearing_transfers (id, state, source_scheme, destination_scheme, payer,"
            " payee, currency, amount, payee2, currency2, amount2, reserved_at, expires_at,"
            " finished_at, window_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
            " $12::timestamptz + interval '30 seconds', $13, $14)",
            t["id"], state, t["src"], t["dst"], t["payer"], t["payee"], t["ccy"], t["minor"],
            t["payee2"], t["ccy2"], t["minor2"], t["created"], t["finished"], window,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO transfers (id, sender_id, receiver_id, source_scheme, destination_scheme,"
            " msg_id, end_to_end_id, payload_sha256, state, tx_status, amount_minor, currency,"
            " transfer, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9,"
            " $10, $11, $12, $13, $14)",
            t["id"], t["payer"], t["payee2"] or t["payee"], t["src"], t["dst"], t["e2e"],
            "0" * 64, state, "ACSC" if state == "COMMITTED" else "RJCT", t["minor"], t["ccy"],
            _json(t), t["created"], t["finished"],
        ) if state == "COMMITTED" else None  # fmt: skip
        if window != WINDOW:
            continue
        for leg_no, leg in enumerate(_legs(t), start=1):
            await conn.execute(
                "INSERT INTO clearing_ledger_entries (journal_id, leg_no, participant_id, currency,"
                " amount, window_id, posted_at) VALUES ($1, $2, $3, $4, $5, $6, $7),"
                " ($1, $2, $8, $4, -$5::bigint, $6, $7)",
                t["id"], leg_no, leg.payer_id, leg.currency, leg.amount_minor, WINDOW, T0,
                leg.payee_id,
            )  # fmt: skip
            for side, who in ((0, leg.payer_id), (1, leg.payee_id)):
                sums = totals.setdefault((who, leg.currency), [0, 0, 0, 0])
                sums[side] += leg.amount_minor
                sums[side + 2] += 1
    await conn.executemany(
        "INSERT INTO clearing_window_totals (window_id, participant_id, currency, debits,"
        " credits, debit_count, credit_count) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(WINDOW, p, c, *sums) for (p, c), sums in sorted(totals.items())],
    )


async def _reference(db_pool, dest, key, masking: sf.Masking):
    transfers = _transfers()
    async with db_pool.acquire() as conn:
        window = await settlement_service.build_window(conn, WINDOW)
    rows = [leg for t in transfers for leg in _legs(t)]
    return await export_window(
        window, f.source(rows), dest, key=key, masking=masking, now=lambda: f.GENERATED
    )


MASKINGS = [
    sf.Masking(),
    sf.Masking(names=False, accounts=False),
    sf.Masking(names=True, accounts=False, keep_chars=0),
    sf.Masking(names=False, accounts=True, keep_chars=8),
]


@pytest.mark.parametrize("masking", MASKINGS)
async def test_database_export_writes_the_reference_files(db_pool, tmp_path, key, masking) -> None:
    async with db_pool.acquire() as conn:
        await _seed(conn, _transfers())
    got = await settlement_service.export(
        db_pool, tmp_path, key, WINDOW, out_dir=tmp_path / "db", masking=masking,
        now=lambda: f.GENERATED,
    )  # fmt: skip
    want = await _reference(db_pool, tmp_path / "reference", key, masking)
    assert got.entries == want.entries == 2 * sum(len(_legs(t)) for t in _transfers())
    assert got.manifest["files"] == want.manifest["files"]
    assert verify_settlement_dir(tmp_path / "db", key.public_key()) == []
    published = sorted(p.name for p in (tmp_path / "db").iterdir())
    assert published == ["camt053", "details", "manifest.json", "pacs009", "summary"]
    async with db_pool.acquire() as conn:
        assert await reconcile(conn, WINDOW, tmp_path / "db") == []


async def test_database_export_in_groups_writes_the_same_files(
    db_pool, tmp_path, key, monkeypatch
) -> None:
    """Participants taken in groups: the query filters by the group, and a conversion's
    second leg outside the group is left out of that pass."""
    async with db_pool.acquire() as conn:
        await _seed(conn, _transfers())
    one = await settlement_service.export(
        db_pool, tmp_path, key, WINDOW, out_dir=tmp_path / "one", now=lambda: f.GENERATED
    )
    monkeypatch.setattr(settlement_export, "_files_open_budget", lambda: 3)
    grouped = await settlement_service.export(
        db_pool, tmp_path, key, WINDOW, out_dir=tmp_path / "grouped", now=lambda: f.GENERATED
    )
    assert grouped.manifest["files"] == one.manifest["files"]
    assert grouped.entries == one.entries


async def test_closed_window_without_transfers_exports_empty_files(db_pool, tmp_path, key) -> None:
    async with db_pool.acquire() as conn:
        await _seed(conn, [])
    result = await settlement_service.export(db_pool, tmp_path, key, WINDOW, out_dir=tmp_path / "w")
    assert result.entries == 0
    assert verify_settlement_dir(tmp_path / "w", key.public_key()) == []


async def test_a_leg_the_window_does_not_declare_stops_the_export_and_frees_the_query(
    db_pool, tmp_path, key
) -> None:
    """The failure comes mid-stream: nothing is published, and the connection of the query
    goes back to the pool."""
    async with db_pool.acquire() as conn:
        await _seed(conn, _transfers())
        await conn.execute(
            "INSERT INTO clearing_transfers (id, state, source_scheme, destination_scheme, payer,"
            " payee, currency, amount, reserved_at, expires_at, finished_at, window_id)"
            " VALUES ('tr-stranger', 'COMMITTED', 'hk-fps', 'hk-fps', 'bank-a', 'bank-zz', 'HKD',"
            " 100, $1, $1, $1, $2)",
            T0 + timedelta(seconds=5), WINDOW,
        )  # fmt: skip
    with pytest.raises(sf.SettlementInputError, match="unknown party"):
        await settlement_service.export(db_pool, tmp_path, key, WINDOW, out_dir=tmp_path / "w")
    assert list(tmp_path.iterdir()) == []
    assert db_pool.get_idle_size() == db_pool.get_size()


@pytest.mark.parametrize("masking", MASKINGS)
async def test_database_lines_come_formatted_unless_their_text_needs_care(db_pool, masking) -> None:
    """PostgreSQL formats the lines whose text needs no escaping (the byte-identity tests
    above then cover its formatting); the others come raw for the exporter's careful path.
    Both kinds are in the test window, so both paths are compared with the reference."""
    async with db_pool.acquire() as conn:
        await _seed(conn, _transfers())
    source = settlement_service.row_source(db_pool, WINDOW, masking=masking)
    lines = [line async for batch in source(None) for line in batch]
    assert len(lines) == len(_transfers())
    formatted = [line for line in lines if line[15]]
    assert formatted and len(formatted) < len(lines)
    assert all(line[15].startswith("<Refs>") for line in formatted)


async def test_reconcile_reports_running_counts_that_disagree_with_the_legs(
    db_pool, tmp_path, key
) -> None:
    """The running counts the export takes its entry counts from are checked against the
    legs, and against the files' summaries: one count off is reported, with the row."""
    async with db_pool.acquire() as conn:
        await _seed(conn, _transfers())
        await settlement_service.export(db_pool, tmp_path, key, WINDOW, out_dir=tmp_path / "db")
        pid, ccy = await conn.fetchrow(
            "SELECT participant_id, currency FROM clearing_window_totals"
            " WHERE window_id = $1 AND debit_count > 0 ORDER BY 1, 2 LIMIT 1",
            WINDOW,
        )
        await conn.execute(
            "UPDATE clearing_window_totals SET debit_count = debit_count + 1"
            " WHERE window_id = $1 AND participant_id = $2 AND currency = $3",
            WINDOW, pid, ccy,
        )  # fmt: skip
        diffs = await reconcile(conn, WINDOW, tmp_path / "db")
    assert len(diffs) == 2  # against the legs and against the files
    assert all(d.startswith(f"{pid} {ccy}: ") and "counts" in d for d in diffs)
