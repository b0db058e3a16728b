"""`make bench`: run every bench/bench_*.py module's run() and merge into bench/results.json.

Each module measures its own figures side by side in one run and returns medians.
`python -m bench.run NAME...` runs only the named modules (e.g. `adapters clearing`).
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"


def _merge(figures: dict[str, object], name: str, meta: dict[str, object]) -> None:
    """Merge one module's figures into the file as it is now (re-read just before writing,
    so that another run finishing meanwhile keeps its figures), written atomically."""
    results: dict[str, object] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(figures)
    results.setdefault("_meta", {})
    results["_meta"][name] = meta  # type: ignore[index]
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))
    failed = []
    for name in names:
        started = time.perf_counter()
        print(f"== bench {name}", flush=True)
        try:
            figures = importlib.import_module(f"bench.bench_{name}").run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for k, v in figures.items():
            print(f"   {k} = {v}", flush=True)
        _merge(figures, name, {
            "seconds": round(time.perf_counter() - started, 1),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "machine": f"{platform.machine()} x{__import__('os').cpu_count()}",
        })
    print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
