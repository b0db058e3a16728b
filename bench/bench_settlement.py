"""Settlement export of a large window: wall time and peak RSS.

A window of 1,000,000 transfers among 1,000 participants in 3 currencies, fed by a synthetic
source (the same shape of rows a database cursor would yield, in batches of 1,000), exported
with every file fsynced, signed, in a fresh process per run so the peak RSS is the export's
own. Figures are medians of `RUNS` runs.

Synthetic layout: transfer i = k * P + a is paid by participant a to participant
(a + 1 + k mod (P - 1)) mod P in currency k mod 3, generated in order without holding the
window in memory; the source yields each transfer once, as a query over the window would.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

TRANSFERS = 1_000_000
PARTICIPANTS = 1_000
CURRENCIES = ("HKD", "CNY", "MOP")
BATCH_ROWS = 1_000
RUNS = 3
CHILD_TIMEOUT_S = 150
REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ("hk-fps", "cn-ibps", "mo-fps")
NAMES = ("CHAN Tai Man", "WONG Siu Ming", "LI Xiaoming", "LEONG Ka Wai", "HO Mei Ling")
OPENED = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)


def _payee(a: int, k: int, p: int) -> int:
    return (a + 1 + k % (p - 1)) % p


def _minor(i: int) -> int:
    return 100 + (i * 7919) % 1_000_000


def _totals(n: int, p: int):
    from clearing.money import Money
    from clearing.settlement_files import PositionTotal

    acc = {}
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
    return tuple(
        PositionTotal(f"p{q:04d}", Money(d, c_), Money(c, c_), Money(c - d, c_), nd, nc)
        for (q, c_), (d, c, nd, nc) in sorted(acc.items())
    )


def _window(n: int, p: int):
    from clearing import settlement_files as sf

    parts = tuple(
        sf.Participant(f"p{q:04d}", f"Participant Bank {q}", "HKICL", f"{q:03d}") for q in range(p)
    )
    systems = (
        sf.SettlementSystem("HKD", "HK CHATS", "HKD CHATS", "BAYGATE-HKD"),
        sf.SettlementSystem("CNY", "CNAPS HVPS", "CNAPS HVPS", "BAYGATE-CNY"),
        sf.SettlementSystem("MOP", "Macau RTGS", "MOP RTGS", "BAYGATE-MOP"),
    )
    closed = OPENED + timedelta(hours=2)
    return sf.Window("w-bench-1m", OPENED, closed, parts, _totals(n, p), systems)


def _source(n: int, p: int):
    """Rows shaped as a database cursor would yield them: new strings, datetimes and Money."""
    from clearing.money import Money
    from clearing.settlement_files import TransferRow

    step, latency = timedelta(microseconds=7000), timedelta(milliseconds=40)
    ids = [f"p{q:04d}" for q in range(p)]
    schemes = [SCHEMES[q % 3] for q in range(p)]

    async def rows_for(members: frozenset[str]) -> AsyncIterator[list[TransferRow]]:
        wanted = [ids[q] in members for q in range(p)]
        batch: list[TransferRow] = []
        at = OPENED
        for i in range(n):
            k, a = divmod(i, p)
            b = _payee(a, k, p)
            at += step
            if wanted[a] or wanted[b]:
                digits = f"{i:012d}"
                row = TransferRow(
                    "t" + digits, "E2E" + digits, at, at + latency, ids[a], ids[b],
                    Money(_minor(i), CURRENCIES[k % 3]), schemes[a], schemes[b],
                    NAMES[i % 5], "012-" + digits[3:], NAMES[(i + 2) % 5], "6222" + digits,
                )  # fmt: skip
                batch.append(row)
                if len(batch) >= BATCH_ROWS:
                    yield batch
                    batch = []
        if batch:
            yield batch

    return rows_for


def _child(out_dir: Path, n: int, p: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.settlement_export import export_window

    window = _window(n, p)
    key = Ed25519PrivateKey.generate()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = asyncio.run(export_window(window, _source(n, p), out_dir / "w", key=key))
    seconds = time.perf_counter() - started
    size = sum(f["size_bytes"] for f in result.manifest["files"].values())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = usage.ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "entries": result.entries,
                      "cpu_user_s": usage.ru_utime - before.ru_utime,
                      "cpu_sys_s": usage.ru_stime - before.ru_stime,
                      "files": len(result.manifest["files"]), "bytes": size}))  # fmt: skip


def _one_run(n: int, p: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-settlement-"))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_settlement", "--child", str(tmp), str(n), str(p)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=True,
        )  # fmt: skip
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run() -> dict[str, float | int]:
    runs = [_one_run(TRANSFERS, PARTICIPANTS) for _ in range(RUNS)]
    return {
        "settlement_export_s_1m": round(statistics.median(r["seconds"] for r in runs), 2),
        "settlement_export_rss_mb": round(statistics.median(r["rss_mb"] for r in runs), 1),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        n, p = (int(x) for x in sys.argv[3:5]) if len(sys.argv) >= 5 else (TRANSFERS, PARTICIPANTS)
        _child(Path(sys.argv[2]), n, p)
    else:
        for r in (_one_run(int(os.environ.get("N", TRANSFERS)), PARTICIPANTS),):
            print(r)
