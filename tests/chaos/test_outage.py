"""Database outage: PostgreSQL goes away under load and comes back.

While it is away every request is answered within its timeout, 503 with Retry-After, never
500; /readyz turns red, then green again; submissions succeed again within 5 s of the
database's return; nothing acknowledged is lost. Quick variant: a 3 s stop at 150/s. Full
(`make chaos`): 10 s stopped, and 10 s frozen (connections hang rather than drop), at 500/s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import chaos
from tests.chaos.scenarios import OutagePlan, outage_run, summary

QUICK = OutagePlan(outage_s=3.0, rate_per_s=150.0, before_s=3.0, after_s=5.0, seed=4)


def assert_clean(result: dict[str, Any], plan: OutagePlan) -> None:
    outage = result["outage"]
    if plan.mode == "stop":  # a frozen server answers late rather than not at all
        assert outage["statuses_during"].get("503", 0) > 0, outage
    assert set(outage["statuses_during"]) <= {"200", "400", "503"}, outage
    assert result["requests"]["by_status"].get("500", 0) == 0
    assert result["requests"]["unavailable_without_retry_after"] == 0
    assert result["requests"]["over_timeout"] == 0
    assert outage["readyz_red_samples"] > 0
    assert outage["readyz_green_after_s"] is not None
    assert outage["last_failure_after_s"] <= plan.recover_s_max, outage
    assert result["unanswered_after_resends"] == 0
    assert result["acknowledged"] == result["found"] > 0
    assert (result["lost"], result["duplicated"]) == (0, 0), result["violations"]
    assert result["invariant_violations"] == 0, result["violations"]


async def test_a_short_database_stop_is_503_then_service_again(tmp_path: Path) -> None:
    result = await outage_run(tmp_path, QUICK)
    print(json.dumps(summary(result)))
    assert_clean(result, QUICK)


@pytest.mark.slow
@pytest.mark.parametrize("plan", [chaos.FULL_OUTAGE_STOP, chaos.FULL_OUTAGE_FREEZE],
                         ids=["stop", "freeze"])  # fmt: skip
async def test_ten_seconds_without_the_database_at_500_per_second(
    tmp_path: Path, plan: OutagePlan
) -> None:
    result = await outage_run(tmp_path, plan, log=print)
    chaos.record(result)
    print(json.dumps(summary(result)))
    assert_clean(result, plan)
