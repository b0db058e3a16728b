"""The clearing core stays pure: no database or HTTP library, no clock of its own."""

from __future__ import annotations

import ast
from pathlib import Path

CLEARING = Path(__file__).resolve().parents[2] / "clearing"
ENGINE_MODULES = (
    "ports", "positions", "reserve", "twophase", "effects", "ledger", "fx", "corridors",
    "netting", "settlement", "windows", "engine",
)  # fmt: skip


def _tree(name: str) -> ast.Module:
    return ast.parse((CLEARING / f"{name}.py").read_text(), filename=f"{name}.py")


def test_no_clearing_module_imports_io_libraries() -> None:
    for path in sorted(CLEARING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in {"asyncpg", "aiohttp", "gateway"}, (path.name, n)


CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "monotonic"), ("time", "perf_counter"),
}  # fmt: skip


def test_the_engine_never_reads_the_clock() -> None:
    for name in ENGINE_MODULES:
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name):
                    assert (owner.id, node.func.attr) not in CLOCK_READS, (
                        f"{name}.py reads the clock; take `now` or a clock instead"
                    )
