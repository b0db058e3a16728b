"""Crash safety: the gateway killed with SIGKILL under load loses and doubles nothing.

The quick variant (2 kills at 150 submissions/s) runs with every test; the full one (5 kills
at 500/s, bench/chaos.py) under `make chaos`. Both also prove that the checks can fail: the
quiet records are tampered with afterwards and each tampering must be reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import chaos
from tests.chaos.checks import verify
from tests.chaos.load import LoadDriver
from tests.chaos.scenarios import CrashPlan, crash_run, summary
from tests.chaos.stack import ChaosStack

QUICK = CrashPlan(kills=2, rate_per_s=150.0, gap_s=(2.5, 5.0), down_s=(0.0, 0.5), tail_s=2.0,
                  sim_delay_ms=100, seed=3)  # fmt: skip


def assert_clean(result: dict[str, Any]) -> None:
    assert result["unanswered_after_resends"] == 0
    assert result["acknowledged"] == result["found"] > 0
    assert (result["lost"], result["duplicated"]) == (0, 0), result["violations"]
    assert result["invariant_violations"] == 0, result["violations"]
    # The kills hit transfers in flight, and those all ended (committed or released).
    assert result["in_flight_at_failures"] > 0
    assert set(result["in_flight_outcomes"]) <= {"COMMITTED", "ABORTED", "EXPIRED"}


async def tamper_and_verify(st: ChaosStack, load: LoadDriver, _result: dict[str, Any]) -> None:
    """A second journal for a committed transfer, a reservation out of thin air and an
    acknowledged transfer whose record vanished must each be caught."""
    conn = await st.connect()
    try:
        t = await conn.fetchrow(
            "SELECT id, payer, payee, currency, amount FROM clearing_transfers "
            "WHERE state = 'COMMITTED' AND payee2 IS NULL LIMIT 1"
        )
        await conn.execute(
            """INSERT INTO clearing_ledger_entries (journal_id, leg_no, participant_id, currency,
                   amount, window_id, posted_at)
               VALUES ($1, 1, $2, $4, $5, 1, now()), ($1, 1, $3, $4, -$5::bigint, 1, now())""",
            t["id"], t["payer"], t["payee"], t["currency"], t["amount"],
        )  # fmt: skip
        await conn.execute("UPDATE clearing_positions SET reserved = reserved + 1 WHERE "
                           "(participant_id, currency) = ($1, $2)", t["payer"], t["currency"])  # fmt: skip
        gone = await conn.fetchval(
            "UPDATE transfers SET end_to_end_id = 'X' || substr(end_to_end_id, 2) "
            "WHERE id = (SELECT id FROM transfers WHERE state = 'COMMITTED' LIMIT 1) RETURNING id"
        )
    finally:
        await conn.close()
    v = await verify(st, load, [])
    text = "\n".join(v.violations)
    assert v.duplicated >= 1 and f"transfer {t['id']} (COMMITTED): 4 ledger entries" in text
    assert f"position {t['payer']} {t['currency']}: net" in text  # the ledger no longer matches
    assert f"position {t['payer']} {t['currency']}: reserved" in text
    assert v.lost == 1 and "lost:" in text, (gone, text)


async def test_killing_the_gateway_twice_under_load_loses_nothing(tmp_path: Path) -> None:
    result = await crash_run(tmp_path, QUICK, inspect=tamper_and_verify)
    print(json.dumps(summary(result)))
    assert result["kills"] == 2
    assert_clean(result)
    # Receivers slow to answer: kills interrupted deliveries they had already applied, and
    # the copies sent after the restart were recognised, not applied again.
    assert result["redeliveries"] > 0


@pytest.mark.slow
async def test_killing_the_gateway_five_times_at_500_per_second_loses_nothing(
    tmp_path: Path,
) -> None:
    result = await crash_run(tmp_path, chaos.FULL_CRASH, log=print)
    chaos.record(result)
    print(json.dumps(summary(result)))
    assert result["kills"] >= 5
    assert result["offered_rate_per_s"] >= 500
    assert_clean(result)
