"""Chaos scenarios: quick variants run with every test; full ones only under `-m slow`.

`make test` runs plain `pytest`, which would also collect the full scenarios (minutes
each): they are skipped unless the marker expression asks for `slow` (`make chaos`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="full chaos scenario: `make chaos` (pytest -m slow tests/chaos)")
    for item in items:
        if "slow" in item.keywords and HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)
