"""`make chaos`: the full crash and database-outage scenarios, figures in bench/chaos.json.

Scenarios (tests/chaos/scenarios.py), each on a fresh PostgreSQL, simulator process and
`baygate serve` process, loopback only:

- crash: 500 submissions/s offered; the gateway SIGKILLed at 5 random moments, restarted
  each time; then resends, drain and the checks of tests/chaos/checks.py;
- outage-stop: 500/s; PostgreSQL shut down for 10 s, then started again;
- outage-freeze: 500/s; PostgreSQL frozen (SIGSTOP) for 10 s, then resumed.

`make chaos` runs them through pytest (`-m slow tests/chaos`: each full test records its
scenario here and asserts on it); `python -m bench.chaos [crash|outage-stop|outage-freeze]`
runs them directly, and `python -m bench.chaos crash-timeout-30s` the informational crash run
with the default transfer timeout. bench/chaos.json keeps the latest result of each scenario and the sums:
kills, outages, acknowledged, found, lost, duplicated, invariant_violations.
"""

from __future__ import annotations

import asyncio
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.chaos.scenarios import CrashPlan, OutagePlan, crash_run, outage_run

RESULTS = Path(__file__).resolve().parent / "chaos.json"
TOTALS = ("kills", "outages", "acknowledged", "found", "lost", "duplicated", "invariant_violations")

# The gateway here cannot deliver all of 500/s while accepting them (two cores shared with
# PostgreSQL, the simulators and this driver), so a delivery backlog builds during the run.
# A 120 s transfer timeout keeps that backlog from expiring transfers, which is not what this
# scenario is about (docs/reliability.md, "Crash safety", known limits).
FULL_CRASH = CrashPlan(kills=5, rate_per_s=500.0, gap_s=(4.0, 9.0), down_s=(0.0, 1.0),
                       transfer_timeout_s=120.0, seed=11)  # fmt: skip
# The same run with the default 30 s transfer timeout: measures the known limit (receivers
# holding credits for transfers that expired in the backlog). Informational: `python -m
# bench.chaos crash-timeout-30s`; not in the default run, not in the sums.
CRASH_DEFAULT_TIMEOUT = CrashPlan(kills=5, rate_per_s=500.0, gap_s=(4.0, 9.0), down_s=(0.0, 1.0),
                                  transfer_timeout_s=30.0, seed=11)  # fmt: skip
FULL_OUTAGE_STOP = OutagePlan(outage_s=10.0, rate_per_s=500.0, mode="stop", seed=12)
FULL_OUTAGE_FREEZE = OutagePlan(outage_s=10.0, rate_per_s=500.0, mode="freeze", seed=13)

SCENARIOS: dict[str, Callable[[Path, Callable[[str], None]], Awaitable[dict[str, Any]]]] = {
    "crash": lambda root, log: crash_run(root, FULL_CRASH, log),
    "outage-stop": lambda root, log: outage_run(root, FULL_OUTAGE_STOP, log),
    "outage-freeze": lambda root, log: outage_run(root, FULL_OUTAGE_FREEZE, log),
}
INFORMATIONAL: dict[str, Callable[[Path, Callable[[str], None]], Awaitable[dict[str, Any]]]] = {
    "crash-timeout-30s": lambda root, log: _named(
        crash_run(root, CRASH_DEFAULT_TIMEOUT, log), "crash-timeout-30s"
    ),
}


async def _named(run: Awaitable[dict[str, Any]], name: str) -> dict[str, Any]:
    return {**await run, "scenario": name, "informational": True}


def record(result: dict[str, Any], path: Path = RESULTS) -> dict[str, Any]:
    """Keep `result` as its scenario's latest and recompute the sums; returns the file's data."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    scenarios = data.setdefault("scenarios", {})
    result = {**result, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    scenarios[result["scenario"]] = result
    for key in TOTALS:
        data[key] = sum(
            int(s.get(key, 0)) for s in scenarios.values() if not s.get("informational")
        )
    data["_meta"] = {"python": platform.python_version(),
                     "machine": f"{platform.machine()} x{__import__('os').cpu_count()}"}  # fmt: skip
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return data


def failed(result: dict[str, Any]) -> bool:
    return bool(result["lost"] or result["duplicated"] or result["invariant_violations"])


async def run(names: list[str]) -> int:
    bad = 0
    for name in names:
        root = Path(tempfile.mkdtemp(prefix=f"baygate-chaos-{name}-"))
        print(f"== chaos {name} ({root})", flush=True)
        scenario = SCENARIOS.get(name) or INFORMATIONAL[name]
        result = await scenario(root, lambda line: print(f"   {line}", flush=True))
        record(result)
        if failed(result):
            bad += 1
            print(f"   FAILED, logs kept in {root}:", *result["violations"], sep="\n   ")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {RESULTS}")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS and n not in INFORMATIONAL]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {[*SCENARIOS, *INFORMATIONAL]}",
              file=sys.stderr)  # fmt: skip
        return 2
    return asyncio.run(run(names))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
