"""Garbage-collector settings of the long-running processes (gateway/gctune.py), applied in a
child process so that this test process keeps its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.config import Settings

PROBE = (
    "import gc, sys; from gateway import gctune; gctune.tune(int(sys.argv[1]));"
    "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)"
)


@pytest.mark.parametrize(("gen0", "expected"), [(20_000, "20000 True"), (0, "700 False")])
def test_tune_sets_the_young_generation_and_freezes_start_up(gen0: int, expected: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(gen0)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_the_gateway_tunes_by_default_and_can_be_told_not_to() -> None:
    assert Settings().gc_gen0_allocations == 20_000
    assert Settings(gc_gen0_allocations=0).gc_gen0_allocations == 0
